#include "eval/eval_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>

#include "core/files.h"
#include "eval/fidelity.h"
#include "eval/longbench_metrics.h"
#include "eval/niah.h"
#include "eval/py_text.h"
#include "eval/rescore.h"
#include "eval/ruler_metrics.h"
#include "io/jsonl.h"
#include "report/stats.h"
#include "report/svg.h"

namespace echokv {
namespace {

std::string fmt(double v, int digits = 2) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

// " [lo, hi]" of a MeanCI's JSON, "" without an interval.
std::string interval_text(const nlohmann::json& ci, int digits) {
  if (!ci.contains("ci95") || !ci["ci95"].is_array()) return "";
  return " [" + fmt(ci["ci95"][0].get<double>(), digits) + ", " + fmt(ci["ci95"][1].get<double>(), digits) + "]";
}

// A method's records of one benchmark that ran; those that recorded an error are counted.
std::vector<nlohmann::json> records_of(const EvalConfig& c, const std::string& method, const std::string& benchmark,
                                       int64_t* errors = nullptr) {
  const std::string path = join_path(join_path(join_path(c.out_dir, "predictions"), method), benchmark + ".jsonl");
  if (!file_exists(path)) return {};
  std::vector<nlohmann::json> ran;
  for (auto& r : read_jsonl(path, true)) {
    if (r.contains("error")) {
      if (errors) ++*errors;
      continue;
    }
    ran.push_back(std::move(r));
  }
  return ran;
}

// RULER per-sample scores of one method: length -> (task, index) -> score x100.
using RulerSampleScores = std::map<std::string, std::map<std::pair<std::string, int64_t>, double>>;

RulerSampleScores ruler_sample_scores(const std::vector<nlohmann::json>& records) {
  RulerSampleScores out;
  for (const auto& r : records) {
    const std::string task = r["task"].get<std::string>();
    const auto refs = r["outputs"].get<std::vector<std::string>>();
    const std::string pred = ruler::postprocess_pred(r["pred"].get<std::string>());
    const double v = ruler::metric_for_task(task) == "string_match_part" ? ruler::string_match_part_sample(pred, refs)
                                                                         : ruler::string_match_all_sample(pred, refs);
    out[std::to_string(r["length"].get<int64_t>())][{task, r.value("index", int64_t{0})}] = 100.0 * v;
  }
  return out;
}

// NIAH per-sample scores x100 by (length, depth, sample), by the metric of each record's setup.
using NiahKey = std::tuple<int64_t, double, int64_t>;
std::map<NiahKey, double> niah_sample_scores(const std::vector<nlohmann::json>& records) {
  std::map<NiahKey, double> out;
  for (const auto& r : records) {
    NiahSample s;
    s.setup = r.value("setup", "custom");
    s.metric = r.value("metric", "");
    s.outputs = r.contains("outputs") ? r["outputs"].get<std::vector<std::string>>()
                                      : r.value("keywords", std::vector<std::string>{});
    s.needle = r.value("needle", "");
    out[{r["length"].get<int64_t>(), r["depth"].get<double>(), r.value("sample", int64_t{0})}] =
        100.0 * niah_score(s, r["pred"].get<std::string>());
  }
  return out;
}

template <typename Key>
stats::MeanCI paired_on_shared_keys(const std::map<Key, double>& a, const std::map<Key, double>& b) {
  std::vector<double> x, y;
  for (const auto& [key, v] : a) {
    auto it = b.find(key);
    if (it == b.end()) continue;
    x.push_back(v);
    y.push_back(it->second);
  }
  return stats::paired_bootstrap(x, y);
}

// RULER: the difference of two methods' task averages at one length, on the (task, sample)
// pairs both ran: per task the mean paired difference, averaged over tasks; its interval
// resamples pairs within each task (each task keeps its weight, as in the average).
stats::MeanCI ruler_paired_average(const std::map<std::pair<std::string, int64_t>, double>& a,
                                   const std::map<std::pair<std::string, int64_t>, double>& b) {
  std::map<std::string, std::vector<double>> by_task;
  for (const auto& [key, v] : a) {
    auto it = b.find(key);
    if (it != b.end()) by_task[key.first].push_back(v - it->second);
  }
  std::vector<std::vector<double>> groups;
  for (auto& [task, d] : by_task) groups.push_back(std::move(d));
  return stats::stratified_bootstrap_mean(groups);
}


}  // namespace

nlohmann::json score_evaluation(const EvalConfig& c) {
  nlohmann::json out = {{"model", c.model}, {"config", c.source}};
  for (const auto& m : c.methods) {
    nlohmann::json mj = {{"cache", m.cache}, {"options", m.method->options_json()}, {"size_knob", m.method->size_knob()}};
    if (const auto r = m.method->requested_ratio()) mj["requested_ratio"] = *r;
    double ratio_sum = 0, prompt_ratio_sum = 0, prefill_sum = 0, scoring_sum = 0, decode_sum = 0, kept_sum = 0;
    int64_t ratio_n = 0, prompt_ratio_n = 0, timed_n = 0, kept_n = 0, reused_n = 0;
    std::map<std::string, int64_t> size_notes;  // why the request could not be met -> samples
    auto note_ratio = [&](const nlohmann::json& r) {
      if (r.contains("size_note") && r["size_note"].is_string()) ++size_notes[r["size_note"].get<std::string>()];
      if (r.contains("context_pairs_kept")) {
        kept_sum += r["context_pairs_kept"].get<double>();
        ++kept_n;
        reused_n += r.value("scores_reused", false) ? 1 : 0;
      }
      if (r.contains("bytes_ratio")) {
        ratio_sum += r["bytes_ratio"].get<double>();
        ++ratio_n;
      }
      if (r.contains("prompt_bytes_ratio")) {
        prompt_ratio_sum += r["prompt_bytes_ratio"].get<double>();
        ++prompt_ratio_n;
      }
      if (r.contains("prefill_seconds")) {  // generation samples: where the time goes
        prefill_sum += r["prefill_seconds"].get<double>();
        scoring_sum += r.value("scoring_seconds", 0.0);
        decode_sum += r.value("decode_seconds", 0.0);
        ++timed_n;
      }
    };
    // RULER: task -> length -> score
    {
      std::map<std::string, std::map<std::string, std::pair<std::vector<std::string>, std::vector<std::vector<std::string>>>>> g;
      int64_t errors = 0;
      const auto records = records_of(c, m.name, "ruler", &errors);
      if (errors) mj["ruler"]["errors"] = errors;
      const auto per_sample = ruler_sample_scores(records);
      for (const auto& r : records) {
        note_ratio(r);
        auto& slot = g[r["task"].get<std::string>()][std::to_string(r["length"].get<int64_t>())];
        slot.first.push_back(r["pred"].get<std::string>());
        slot.second.push_back(r["outputs"].get<std::vector<std::string>>());
      }
      std::map<std::string, std::pair<double, int>> avg;
      std::map<std::string, std::vector<std::vector<double>>> task_samples;  // length -> per task, per-sample scores
      for (const auto& [task, lengths] : g)
        for (const auto& [len, s] : lengths) {
          const double score = ruler::score_task(task, s.first, s.second);
          mj["ruler"]["scores"][task][len] = score;
          mj["ruler"]["samples"][task][len] = s.first.size();
          std::vector<double> v;
          for (const auto& [key, x] : per_sample.at(len))
            if (key.first == task) v.push_back(x);
          mj["ruler"]["ci"][task][len] = stats::bootstrap_mean_ci(v).to_json();
          task_samples[len].push_back(std::move(v));
          avg[len].first += score;
          avg[len].second += 1;
        }
      for (const auto& [len, sn] : avg) {
        mj["ruler"]["average"][len] = py::round_to(sn.first / sn.second, 2);
        // The average's CI: a bootstrap resampling within each task (stratified).
        mj["ruler"]["average_ci"][len] = stats::stratified_bootstrap_mean(task_samples[len]).to_json();
        int64_t n = 0;
        for (const auto& [task, lengths] : g) n += lengths.count(len) ? static_cast<int64_t>(lengths.at(len).first.size()) : 0;
        mj["ruler"]["average_samples"][len] = n;
      }
    }
    // NIAH: length -> depth -> mean score x100, with the sample count per cell
    {
      std::map<int64_t, std::map<double, std::pair<double, int>>> grid;
      int64_t errors = 0;
      const auto scores = niah_sample_scores(records_of(c, m.name, "niah", &errors));
      for (const auto& r : records_of(c, m.name, "niah")) note_ratio(r);
      std::vector<double> all;
      for (const auto& [key, v] : scores) {
        auto& cell = grid[std::get<0>(key)][std::get<1>(key)];
        cell.first += v;
        cell.second += 1;
        all.push_back(v);
      }
      for (const auto& [len, depths] : grid)
        for (const auto& [depth, sn] : depths) {
          char key[32];
          std::snprintf(key, sizeof(key), "%g", depth);
          mj["niah"]["grid"][std::to_string(len)][key] = sn.first / sn.second;
          mj["niah"]["cell_samples"][std::to_string(len)][key] = sn.second;
        }
      if (!all.empty()) {
        const auto ci = stats::bootstrap_mean_ci(all);
        mj["niah"]["average"] = ci.mean;
        mj["niah"]["ci"] = ci.to_json();
      }
      if (errors) mj["niah"]["errors"] = errors;
    }
    // LongBench
    {
      std::map<std::string, std::vector<longbench::Prediction>> by_dataset;
      for (const auto& r : records_of(c, m.name, "longbench")) {
        note_ratio(r);
        longbench::Prediction p;
        p.pred = r["pred"].get<std::string>();
        p.answers = r["answers"].get<std::vector<std::string>>();
        if (r["all_classes"].is_array()) p.all_classes = r["all_classes"].get<std::vector<std::string>>();
        p.length = r.value("length", -1);
        by_dataset[r["dataset"].get<std::string>()].push_back(std::move(p));
      }
      double sum = 0;
      for (const auto& [d, preds] : by_dataset) {
        const double s = longbench::score_dataset(d, preds);
        mj["longbench"]["scores"][d] = s;
        sum += s;
      }
      if (!by_dataset.empty()) mj["longbench"]["average"] = py::round_to(sum / by_dataset.size(), 2);
    }
    // Fidelity
    {
      FidelityStats all;
      for (const auto& r : records_of(c, m.name, "fidelity")) {
        note_ratio(r);
        all.merge(FidelityStats::from_json(r));
      }
      if (all.tokens) mj["fidelity"] = all.to_json();
    }
    if (ratio_n) mj["bytes_ratio"] = ratio_sum / ratio_n;
    if (prompt_ratio_n) mj["prompt_bytes_ratio"] = prompt_ratio_sum / prompt_ratio_n;
    if (kept_n) {
      mj["context_pairs_kept"] = kept_sum / kept_n;  // KVzip's own ratio
      mj["scores_reused"] = reused_n;
    }
    if (!size_notes.empty()) {
      for (const auto& [note, count] : size_notes) mj["size_notes"][note] = count;
    }
    if (timed_n)
      mj["cost"] = {{"samples", timed_n}, {"prefill_seconds", prefill_sum / timed_n},
                    {"scoring_seconds", scoring_sum / timed_n}, {"decode_seconds", decode_sum / timed_n}};
    out["methods"][m.name] = mj;
  }
  return out;
}

namespace {

// Bytes: after the prompt (the compressed state every method is compared at), else at the
// end of each sample (after the answer / the scored continuation).
std::optional<double> prompt_ratio_of(const nlohmann::json& mj) {
  if (mj.contains("prompt_bytes_ratio")) return mj["prompt_bytes_ratio"].get<double>();
  if (mj.contains("bytes_ratio")) return mj["bytes_ratio"].get<double>();
  return std::nullopt;
}

// Score-vs-ratio series: chart -> method family -> points at each method's measured ratio.
class RatioCurves {
 public:
  explicit RatioCurves(const nlohmann::json& metrics) : metrics_(metrics) {}
  void add_point(const std::string& chart, const EvalMethod& m, double y) {
    const auto ratio = prompt_ratio_of(metrics_["methods"][m.name]);
    if (!ratio) return;
    // One line per method family: the name without its numeric parts ("kvzip-head-0.5" ->
    // "kvzip-head"), so variants of one cache kind get their own lines.
    std::string family;
    for (const auto& part : py::split_on(m.name, "-")) {
      char* end = nullptr;
      std::strtod(part.c_str(), &end);
      if (!part.empty() && end == part.c_str() + part.size()) continue;
      family += (family.empty() ? "" : "-") + part;
    }
    if (family.empty()) family = m.cache;
    auto& s = curves_[chart][family];
    s.name = family;
    s.x.push_back(*ratio);
    s.y.push_back(y);
  }
  const std::map<std::string, std::map<std::string, svg::LineSeries>>& charts() const { return curves_; }

 private:
  const nlohmann::json& metrics_;
  std::map<std::string, std::map<std::string, svg::LineSeries>> curves_;
};

void write_summary_section(std::ostream& md, const EvalConfig& c, const nlohmann::json& metrics) {
  const auto ratio_of = prompt_ratio_of;
  bool any_kept = false;
  for (const auto& m : c.methods) any_kept = any_kept || metrics["methods"][m.name].contains("context_pairs_kept");
  if (any_kept)
    md << "KVzip methods: \"context pairs kept\" is KVzip's own ratio (kept / all context KV pairs, as the official "
          "reports it); the stored / full columns count every byte (prefix, question and generated tokens included).\n\n";
  md << "`ratio` is the fraction of the full cache's bytes kept, measured after the prompt (kvpress's compression_ratio = 1 - "
        "ratio); \"requested\" is what the entry asked for (- where its size knob is not a ratio: see `size_knob` in "
        "metrics.json).\n\n";
  md << "## Summary\n\n| method | cache | requested | stored / full after the prompt | stored / full at the end |";
  if (any_kept) md << " context pairs kept |";
  if (c.niah) md << " NIAH avg |";
  if (c.ruler)
    for (int64_t len : c.ruler->lengths) md << " RULER avg " << len << " |";
  if (c.longbench) md << " LongBench avg |";
  if (c.fidelity) md << " KL | top-1 |";
  md << "\n|---|---|---|---|---|" << (any_kept ? "---|" : "");
  md << (c.niah ? "---|" : "");
  if (c.ruler)
    for (size_t i = 0; i < c.ruler->lengths.size(); ++i) md << "---|";
  md << (c.longbench ? "---|" : "") << (c.fidelity ? "---|---|" : "") << "\n";
  for (const auto& m : c.methods) {
    const auto& mj = metrics["methods"][m.name];
    const auto pr = ratio_of(mj);
    md << "| " << m.name << " | " << m.cache << " | "
       << (mj.contains("requested_ratio") ? fmt(mj["requested_ratio"].get<double>(), 3) : "-") << " | " << (pr ? fmt(*pr, 3) : "-") << " | "
       << (mj.contains("bytes_ratio") ? fmt(mj["bytes_ratio"].get<double>(), 3) : "-") << " |";
    if (any_kept) md << " " << (mj.contains("context_pairs_kept") ? fmt(mj["context_pairs_kept"].get<double>(), 3) : "-") << " |";
    auto cell = [&](const nlohmann::json& j, int digits) { return j.is_number() ? fmt(j.get<double>(), digits) : std::string("-"); };
    if (c.niah) md << " " << cell(mj.contains("niah") ? mj["niah"].value("average", nlohmann::json()) : nlohmann::json(), 2) << " |";
    if (c.ruler)
      for (int64_t len : c.ruler->lengths) {
        const std::string L = std::to_string(len);
        const bool has = mj.contains("ruler") && mj["ruler"].contains("average") && mj["ruler"]["average"].contains(L);
        std::string cell = has ? fmt(mj["ruler"]["average"][L].get<double>()) : "-";
        if (has && mj["ruler"].contains("average_ci") && mj["ruler"]["average_ci"].contains(L))
          cell += interval_text(mj["ruler"]["average_ci"][L], 1);
        md << " " << cell << " |";
      }
    if (c.longbench) md << " " << cell(mj.contains("longbench") ? mj["longbench"].value("average", nlohmann::json()) : nlohmann::json(), 2) << " |";
    if (c.fidelity) {
      const bool has = mj.contains("fidelity");
      md << " " << (has ? fmt(mj["fidelity"]["kl"].get<double>(), 5) : "-") << " | "
         << (has ? fmt(100 * mj["fidelity"]["top1"].get<double>(), 2) + "%" : "-") << " |";
    }
    md << "\n";
  }
  md << "\n";
  for (const auto& m : c.methods) {
    if (const auto note = m.method->report_note(); !note.empty()) md << "`" << m.name << "` " << note << "\n\n";
    const auto& mj = metrics["methods"][m.name];
    if (mj.contains("size_notes"))
      for (const auto& [note, count] : mj["size_notes"].items())
        md << "`" << m.name << "`: the requested ratio was not met on " << count.get<int64_t>() << " samples: " << note << ".\n\n";
  }
}

void write_ruler_section(std::ostream& md, const EvalConfig& c, const nlohmann::json& metrics, RatioCurves& curves) {
  std::set<std::string> tasks;
  for (const auto& m : c.methods)
    if (metrics["methods"][m.name].contains("ruler"))
      for (const auto& [t, _] : metrics["methods"][m.name]["ruler"]["scores"].items()) tasks.insert(t);
  for (int64_t len : c.ruler->lengths) {
    const std::string L = std::to_string(len);
    md << "## RULER at " << len << " tokens\n\n| method |";
    for (const auto& t : tasks) md << " " << t << " |";
    md << " average |\n|---|";
    for (size_t i = 0; i <= tasks.size(); ++i) md << "---|";
    md << "\n";
    for (const auto& m : c.methods) {
      const auto& r = metrics["methods"][m.name]["ruler"];
      md << "| " << m.name << " |";
      for (const auto& t : tasks) {
        const bool has = r.contains("scores") && r["scores"].contains(t) && r["scores"][t].contains(L);
        std::string cell = has ? fmt(r["scores"][t][L].get<double>()) : "-";
        if (has && r.contains("ci") && r["ci"][t].contains(L)) {
          const auto& ci = r["ci"][t][L];
          cell += interval_text(ci, 1) + " (n=" + std::to_string(ci["n"].get<int64_t>()) + ")";
        }
        md << " " << cell << " |";
      }
      const bool has_avg = r.contains("average") && r["average"].contains(L);
      std::string avg = has_avg ? fmt(r["average"][L].get<double>()) : "-";
      if (has_avg && r.contains("average_ci") && r["average_ci"].contains(L)) avg += interval_text(r["average_ci"][L], 1);
      md << " " << avg << " |\n";
      if (has_avg) curves.add_point("RULER average at " + L, m, r["average"][L].get<double>());
    }
    md << "\nCells: score [95 % CI] (percentile bootstrap over the cell's samples; the average's resamples within each "
          "task), n samples per cell (RULER's own runs use 500 per task; a small n gives a wide interval, cells with n=1 "
          "carry none, and a cell whose samples all agree shows a zero-width interval that says nothing about the next "
          "sample).\n\n";
    // Paired differences against the first method, on the (task, sample) pairs both ran.
    const std::string& ref = c.methods.front().name;
    const auto ref_scores = ruler_sample_scores(records_of(c, ref, "ruler"));
    if (c.methods.size() > 1 && ref_scores.count(L)) {
      md << "Paired difference of the average from `" << ref << "` at " << len << " (per task the mean difference over "
         "the samples both ran, averaged over tasks; 95 % CI by a paired bootstrap within tasks; * = the interval excludes "
         "0, otherwise a tie):\n\n| method | difference | pairs |\n|---|---|---|\n";
      for (size_t i = 1; i < c.methods.size(); ++i) {
        const auto other = ruler_sample_scores(records_of(c, c.methods[i].name, "ruler"));
        if (!other.count(L)) continue;
        const auto d = ruler_paired_average(other.at(L), ref_scores.at(L));
        md << "| " << c.methods[i].name << " | " << d.text(1) << (d.excludes_zero() ? " *" : "") << " | " << d.n << " |\n";
      }
      md << "\n";
    }
    for (const auto& m : c.methods) {
      const auto& r = metrics["methods"][m.name]["ruler"];
      if (r.contains("errors"))
        md << "`" << m.name << "`: " << r["errors"].get<int64_t>() << " RULER samples could not run (their records hold the error); "
           << "they are left out of its scores.\n\n";
    }
  }
}

void write_niah_section(std::ostream& md, const EvalConfig& c, const nlohmann::json& metrics, RatioCurves& curves) {
  md << "## Needle in a haystack\n\nSetup: `" << c.niah->setup << "`, scored by " << niah_metric_name(c.niah->metric)
     << " (x100); " << c.niah->samples_per_cell << " sample(s) per (length, depth) cell, "
     << c.niah->lengths.size() * c.niah->depths.size() << " cells.\n\n| method | average [95 % CI] (n) | difference from `"
     << c.methods.front().name << "` (paired) |\n|---|---|---|\n";
  const auto niah_ref = niah_sample_scores(records_of(c, c.methods.front().name, "niah"));
  std::vector<svg::HeatmapPanel> panels;
  for (const auto& m : c.methods) {
    const auto& n = metrics["methods"][m.name]["niah"];
    if (!n.contains("average")) continue;
    const stats::MeanCI ci = stats::MeanCI::from_json(n["ci"]);
    std::string diff = "-";
    if (m.name != c.methods.front().name) {
      const auto d = paired_on_shared_keys(niah_sample_scores(records_of(c, m.name, "niah")), niah_ref);
      diff = d.text(1) + (d.excludes_zero() ? " *" : "");
    }
    md << "| " << m.name << " | " << ci.text(2) << " | " << diff << " |\n";
    if (&m == &c.methods.back()) md << "\n(* = the paired bootstrap interval excludes 0; otherwise the two are tied on this grid.)\n";
    if (n.contains("errors")) md << "| (" << m.name << ": " << n["errors"].get<int64_t>() << " samples could not run) | | |\n";
    curves.add_point("NIAH average", m, n["average"].get<double>());
    svg::HeatmapPanel p;
    p.title = m.name + " (avg " + fmt(n["average"].get<double>(), 1) + ")";
    for (double d : c.niah->depths) {
      char key[32];
      std::snprintf(key, sizeof(key), "%g", d);
      p.row_labels.push_back(std::string(key) + "%");
      std::vector<double> row;
      for (int64_t len : c.niah->lengths) {
        const std::string L = std::to_string(len);
        row.push_back(n["grid"].contains(L) && n["grid"][L].contains(key) ? n["grid"][L][key].get<double>() : NAN);
      }
      p.values.push_back(row);
    }
    for (int64_t len : c.niah->lengths) p.col_labels.push_back(std::to_string(len));
    panels.push_back(p);
  }
  if (!panels.empty()) {
    svg::HeatmapOptions o;
    o.title = "Needle in a haystack: score by depth and context length";
    o.x_label = "context length (tokens)";
    o.y_label = "needle depth";
    o.scale_label = "score (x100), mean of the cell's samples";
    o.vmin = 0;
    o.vmax = 100;
    o.columns = 3;
    o.cell = 36;
    write_text_atomic(join_path(c.out_dir, "niah.svg"), svg::heatmaps(panels, o));
    md << "\n![NIAH heat maps](niah.svg)\n";
  }
  md << "\n";
}

void write_longbench_section(std::ostream& md, const EvalConfig& c, const nlohmann::json& metrics, RatioCurves& curves) {
  md << "## LongBench\n\n";
  const std::string settings_path = join_path(c.out_dir, "longbench-settings.json");
  if (file_exists(settings_path)) {
    const auto st = nlohmann::json::parse(read_text_file(settings_path));
    md << "Prompt budget " << st["max_length"].get<int64_t>() << " tokens (" << st["max_length_source"].get<std::string>()
       << "); chat form: " << st["chat_form"].get<std::string>() << ". ";
  }
  md << "Predictions in LongBench's own layout (score with its eval.py): `longbench-official/pred/<method>/`.\n\n";
  for (const auto& m : c.methods)
    write_longbench_official(records_of(c, m.name, "longbench"), join_path(join_path(join_path(c.out_dir, "longbench-official"), "pred"), m.name));
  md << "| method |";
  for (const auto& d : c.longbench->datasets) md << " " << d << " |";
  md << " average |\n|---|";
  for (size_t i = 0; i <= c.longbench->datasets.size(); ++i) md << "---|";
  md << "\n";
  for (const auto& m : c.methods) {
    const auto& l = metrics["methods"][m.name]["longbench"];
    md << "| " << m.name << " |";
    for (const auto& d : c.longbench->datasets)
      md << " " << (l.contains("scores") && l["scores"].contains(d) ? fmt(l["scores"][d].get<double>()) : "-") << " |";
    md << " " << (l.contains("average") ? fmt(l["average"].get<double>()) : "-") << " |\n";
    if (l.contains("average")) curves.add_point("LongBench average", m, l["average"].get<double>());
  }
  md << "\n";
}

void write_fidelity_section(std::ostream& md, const EvalConfig& c, const nlohmann::json& metrics, RatioCurves& curves) {
  md << "## Fidelity against the full cache\n\n| method | tokens | KL(full ‖ method) | top-1 agreement | ppl | ppl (full) |\n"
        "|---|---|---|---|---|---|\n";
  for (const auto& m : c.methods) {
    const auto& f = metrics["methods"][m.name]["fidelity"];
    if (f.is_null()) continue;
    md << "| " << m.name << " | " << f["tokens"].get<int64_t>() << " | " << fmt(f["kl"].get<double>(), 5) << " | "
       << fmt(100 * f["top1"].get<double>(), 2) << "% | " << fmt(f["ppl"].get<double>(), 3) << " | "
       << fmt(f["ppl_full"].get<double>(), 3) << " |\n";
    curves.add_point("Top-1 agreement with the full cache (%)", m, 100 * f["top1"].get<double>());
  }
  md << "\n";
}

void write_cost_section(std::ostream& md, const EvalConfig& c, const nlohmann::json& metrics) {
  std::ostringstream cost;
  for (const auto& m : c.methods) {
    const auto& mj = metrics["methods"][m.name];
    if (!mj.contains("cost")) continue;
    const auto& k = mj["cost"];
    const double prefill = k["prefill_seconds"].get<double>(), scoring = k["scoring_seconds"].get<double>();
    cost << "| " << m.name << " | " << k["samples"].get<int64_t>() << " | " << fmt(prefill, 3) << " | " << fmt(scoring, 3)
         << " | " << (prefill > 0 ? fmt(scoring / prefill, 2) : "-") << " | " << fmt(k["decode_seconds"].get<double>(), 3) << " |\n";
  }
  if (!cost.str().empty())
    md << "## Cost per generation sample (mean seconds, this machine)\n\n"
          "Scoring: the method's extra pass over the prompt (KVzip's context reconstruction, SnapKV / ThinK "
          "selection, EchoKV x KVzip's full-cache scoring prefill).\n\n"
          "| method | samples | prefill | scoring | scoring / prefill | decode |\n|---|---|---|---|---|---|\n"
       << cost.str() << "\n";
}

void write_curves_section(std::ostream& md, const EvalConfig& c, const RatioCurves& curves) {
  md << "## Score vs stored-bytes ratio\n\n";
  int index = 0;
  for (const auto& [chart, kinds] : curves.charts()) {
    std::vector<svg::LineSeries> series;
    for (const auto& [_, s] : kinds) {  // points in order of the ratio
      std::vector<size_t> order(s.x.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = i;
      std::sort(order.begin(), order.end(), [&s = s](size_t a, size_t b) { return s.x[a] < s.x[b]; });
      svg::LineSeries sorted = s;
      for (size_t i = 0; i < order.size(); ++i) {
        sorted.x[i] = s.x[order[i]];
        sorted.y[i] = s.y[order[i]];
      }
      series.push_back(sorted);
    }
    svg::BarOptions o;
    o.title = chart + " vs KV bytes ratio";
    o.x_label = "stored bytes / full";
    o.y_label = "score";
    // Scores from 0; the axis starts at the lowest multiple of 10 below every point.
    double lowest = 100;
    for (const auto& sr : series)
      for (double y : sr.y) lowest = std::min(lowest, y);
    o.ymin = std::max(0.0, std::floor(lowest / 10.0) * 10.0 - 10.0);
    o.ymax = 100;
    const std::string file = "score-vs-ratio-" + std::to_string(index++) + ".svg";
    write_text_atomic(join_path(c.out_dir, file), svg::lines(series, o, 0.0, 1.05));
    md << "![" << chart << "](" << file << ")\n\n";
  }
}

}  // namespace

void write_eval_report(const EvalConfig& c) {
  const auto metrics = score_evaluation(c);
  write_text_atomic(join_path(c.out_dir, "metrics.json"), metrics.dump(2) + "\n");
  std::ostringstream md;
  md << "# Evaluation: " << c.model << "\n\n";
  md << "Config: `" << c.source << "`. Command: `echokv-eval --config " << c.source << "`.\n";
  md << "Scores: RULER string_match (x100), NIAH by its setup's metric (x100, named in its section), LongBench "
        "official metrics; fidelity against the full cache on the same tokens. Intervals: 95 % percentile bootstrap.\n\n";
  RatioCurves curves(metrics);
  write_summary_section(md, c, metrics);
  if (c.ruler) write_ruler_section(md, c, metrics, curves);
  if (c.niah) write_niah_section(md, c, metrics, curves);
  if (c.longbench) write_longbench_section(md, c, metrics, curves);
  if (c.fidelity) write_fidelity_section(md, c, metrics, curves);
  write_cost_section(md, c, metrics);
  if (!curves.charts().empty()) write_curves_section(md, c, curves);
  write_text_atomic(join_path(c.out_dir, "report.md"), md.str());
}

}  // namespace echokv
