#include "tokenizer/chat_template.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"

namespace echokv {

namespace {

// A rendered conversation before encoding: control ids and text runs.
class Rendering {
 public:
  explicit Rendering(const Tokenizer& tok) : tok_(tok) {}
  void id(int64_t token) {
    flush();
    ids_.push_back(token);
  }
  void special(const std::string& name) {
    auto token = tok_.special_id(name);
    if (!token) throw Error("chat template needs control token '" + name + "', which this tokenizer lacks");
    id(*token);
  }
  void bos() {
    auto b = tok_.bos_id();
    if (!b) throw Error("chat template needs a BOS token, which this tokenizer lacks");
    id(*b);
  }
  void eos() {
    auto e = tok_.eos_id();
    if (!e) throw Error("chat template needs an EOS token, which this tokenizer lacks");
    id(*e);
  }
  void text(const std::string& t) { pending_ += t; }
  // Ends a text chunk without a control token (mistral-common encodes each message alone).
  void cut() { flush(); }
  std::vector<int64_t> take() {
    flush();
    return std::move(ids_);
  }

 private:
  void flush() {
    if (pending_.empty()) return;
    auto part = tok_.encode(pending_);
    ids_.insert(ids_.end(), part.begin(), part.end());
    pending_.clear();
  }
  const Tokenizer& tok_;
  std::vector<int64_t> ids_;
  std::string pending_;
};

std::string trim(const std::string& s) {
  const char* ws = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

void check_roles(const std::vector<ChatMessage>& messages) {
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& r = messages[i].role;
    if (r != "system" && r != "user" && r != "assistant")
      throw Error("chat message " + std::to_string(i) + ": role '" + r + "' (expected system, user or assistant)");
    if (r == "system" && i != 0) throw Error("chat message " + std::to_string(i) + ": a system message must come first");
  }
}

std::vector<int64_t> render_llama3(const Tokenizer& tok, const std::vector<ChatMessage>& msgs, const ChatOptions& o,
                                   const std::string& continuation) {
  Rendering r(tok);
  r.special("<|begin_of_text|>");
  size_t first = 0;
  std::string system;
  if (!msgs.empty() && msgs[0].role == "system") {
    system = trim(msgs[0].content);
    first = 1;
  }
  if (o.knowledge_date_header || first == 1) {
    r.special("<|start_header_id|>");
    r.text("system");
    r.special("<|end_header_id|>");
    r.text("\n\n");
    if (o.knowledge_date_header) r.text("Cutting Knowledge Date: December 2023\nToday Date: " + o.today_date + "\n\n");
    r.text(system);
    r.special("<|eot_id|>");
  }
  for (size_t i = first; i < msgs.size(); ++i) {
    r.special("<|start_header_id|>");
    r.text(msgs[i].role);
    r.special("<|end_header_id|>");
    r.text("\n\n" + trim(msgs[i].content));
    r.special("<|eot_id|>");
  }
  if (o.add_generation_prompt) {
    r.special("<|start_header_id|>");
    r.text("assistant");
    r.special("<|end_header_id|>");
    r.text("\n\n");
  }
  r.text(continuation);
  return r.take();
}

std::vector<int64_t> render_mistral(const Tokenizer& tok, const std::vector<ChatMessage>& msgs, const std::string& continuation) {
  Rendering r(tok);
  r.bos();
  size_t first = 0;
  std::string system;
  if (!msgs.empty() && msgs[0].role == "system") {
    system = msgs[0].content;
    first = 1;
  }
  size_t last_user = msgs.size();
  for (size_t i = first; i < msgs.size(); ++i)
    if (msgs[i].role == "user") last_user = i;
  for (size_t i = first; i < msgs.size(); ++i) {
    if (msgs[i].role == "user") {
      r.special("[INST]");
      r.text(i == last_user && !system.empty() ? system + "\n\n" + msgs[i].content : msgs[i].content);
      r.special("[/INST]");
    } else {
      r.text(msgs[i].content);
      r.eos();
    }
  }
  r.text(continuation);
  return r.take();
}

std::vector<int64_t> render_llama2(const Tokenizer& tok, const std::vector<ChatMessage>& in, const std::string& continuation) {
  std::vector<ChatMessage> msgs(in);
  if (!msgs.empty() && msgs[0].role == "system") {
    if (msgs.size() < 2 || msgs[1].role != "user") throw Error("llama2 chat: a system message must be followed by a user message");
    msgs[1].content = "<<SYS>>\n" + msgs[0].content + "\n<</SYS>>\n\n" + msgs[1].content;
    msgs.erase(msgs.begin());
  }
  Rendering r(tok);
  size_t i = 0;
  for (; i + 1 < msgs.size(); i += 2) {
    if (msgs[i].role != "user" || msgs[i + 1].role != "assistant")
      throw Error("llama2 chat: messages must alternate user/assistant");
    r.bos();
    r.text("[INST] " + trim(msgs[i].content) + " [/INST] " + trim(msgs[i + 1].content) + " ");
    r.eos();
  }
  if (i < msgs.size()) {
    if (msgs[i].role != "user") throw Error("llama2 chat: the last message must be from the user");
    r.bos();
    r.text("[INST] " + trim(msgs[i].content) + " [/INST]");
  }
  r.text(continuation);
  return r.take();
}

}  // namespace

std::vector<int64_t> render_chat(const Tokenizer& tok, const std::vector<ChatMessage>& messages, const ChatOptions& o) {
  return render_chat(tok, messages, o, "");
}

std::vector<int64_t> render_chat(const Tokenizer& tok, const std::vector<ChatMessage>& messages, const ChatOptions& o,
                                 const std::string& continuation) {
  check_roles(messages);
  switch (o.format) {
    case ChatFormat::kLlama3: return render_llama3(tok, messages, o, continuation);
    case ChatFormat::kMistral: return render_mistral(tok, messages, continuation);
    case ChatFormat::kLlama2: return render_llama2(tok, messages, continuation);
    case ChatFormat::kPlain: break;
  }
  std::string text;
  for (const auto& m : messages) text += (text.empty() ? "" : "\n\n") + m.content;
  return tok.encode(text + continuation, tok.bos_id().has_value());
}

std::vector<int64_t> chat_stop_ids(const Tokenizer& tok, ChatFormat format) {
  std::vector<int64_t> ids;
  if (format == ChatFormat::kLlama3) {
    for (const char* name : {"<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"})
      if (auto id = tok.special_id(name)) ids.push_back(*id);
  }
  if (ids.empty())
    if (auto e = tok.eos_id()) ids.push_back(*e);
  return ids;
}

ChatFormat detect_chat_format(const Tokenizer& tok, const std::string& model_dir) {
  if (tok.special_id("<|start_header_id|>")) return ChatFormat::kLlama3;
  if (tok.special_id("[INST]")) return ChatFormat::kMistral;
  if (!model_dir.empty()) {
    const std::string cfg = join_path(model_dir, "tokenizer_config.json");
    if (file_exists(cfg)) {
      try {
        auto j = nlohmann::json::parse(read_text_file(cfg));
        const std::string tmpl = j.contains("chat_template") && j["chat_template"].is_string() ? j["chat_template"].get<std::string>() : "";
        if (tmpl.find("<<SYS>>") != std::string::npos) return ChatFormat::kLlama2;
      } catch (const nlohmann::json::exception& e) {
        fail(cfg, std::string("not valid JSON: ") + e.what());
      }
    }
  }
  return ChatFormat::kPlain;
}

ChatFormat parse_chat_format(const std::string& name) {
  if (name == "llama3") return ChatFormat::kLlama3;
  if (name == "mistral") return ChatFormat::kMistral;
  if (name == "llama2") return ChatFormat::kLlama2;
  if (name == "plain") return ChatFormat::kPlain;
  throw Error("chat template '" + name + "': expected llama3, mistral, llama2 or plain");
}

std::string chat_format_name(ChatFormat f) {
  switch (f) {
    case ChatFormat::kLlama3: return "llama3";
    case ChatFormat::kMistral: return "mistral";
    case ChatFormat::kLlama2: return "llama2";
    case ChatFormat::kPlain: return "plain";
  }
  return "plain";
}

}  // namespace echokv
