// Chat templates as code. Control tokens are inserted by id; the text between two control
// tokens is encoded as one chunk (so user text can never produce a control token).
//   llama3  : Llama 3.1 Instruct (HF template without tools)
//   mistral : Mistral Instruct v0.3 (mistral-common: [INST] / [/INST] by id, system prompt
//             prepended to the last user message)
//   llama2  : Llama 2 chat (Meta's reference: BOS/EOS per turn, <<SYS>> in the first turn)
//   plain   : BOS + the messages' contents joined by a blank line, no roles
#pragma once
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace echokv {

enum class ChatFormat { kPlain, kLlama3, kMistral, kLlama2 };

struct ChatMessage {
  std::string role;     // "system", "user" or "assistant"
  std::string content;
};

struct ChatOptions {
  ChatFormat format = ChatFormat::kPlain;
  // Llama 3.1: HF's template always opens with a system block carrying "Cutting Knowledge
  // Date: December 2023" and "Today Date: <date>" (default on, as HF). Off: no date lines,
  // and no system block at all when there is no system message (Llama 3.0 style).
  bool knowledge_date_header = true;
  std::string today_date = "26 Jul 2024";  // HF's default date_string
  bool add_generation_prompt = true;        // end with the assistant header (llama3)
};

std::vector<int64_t> render_chat(const Tokenizer& tokenizer, const std::vector<ChatMessage>& messages,
                                 const ChatOptions& options);
// The same, with the assistant's answer begun by `continuation` (an answer prefix), which is
// encoded in one piece with the text before it (after the last control token), as a string
// "prompt + answer_prefix" is tokenized: no lone "▁" between them for SentencePiece.
std::vector<int64_t> render_chat(const Tokenizer& tokenizer, const std::vector<ChatMessage>& messages,
                                 const ChatOptions& options, const std::string& continuation);

// Ids that end an assistant turn: llama3 128001/128008/128009 (those present), others EOS.
std::vector<int64_t> chat_stop_ids(const Tokenizer& tokenizer, ChatFormat format);

// From the tokenizer's control tokens and, if given, the model folder's tokenizer_config.json.
ChatFormat detect_chat_format(const Tokenizer& tokenizer, const std::string& model_dir = "");
ChatFormat parse_chat_format(const std::string& name);  // "llama3" | "mistral" | "llama2" | "plain" | "auto" not allowed
std::string chat_format_name(ChatFormat format);

}  // namespace echokv
