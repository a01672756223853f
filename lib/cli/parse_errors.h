// A command-line parse error as one line that says where the options are, instead of the
// parser's bare message and its exit code 109: "echokv-eval: error: The following argument was
// not expected: --ration; see 'echokv-eval generate --help'". Help and version requests print as
// the parser prints them and exit 0.
#pragma once
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

namespace echokv {

inline int report_parse_error(const std::string& name, CLI::App& app, const CLI::ParseError& e) {
  if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
  std::string where = name;
  for (const auto* sub : app.get_subcommands()) where += " " + sub->get_name();
  std::fprintf(stderr, "%s: error: %s; see '%s --help'\n", name.c_str(), e.what(), where.c_str());
  return 2;
}

}  // namespace echokv
