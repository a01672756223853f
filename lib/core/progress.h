// Human-readable durations for progress lines and reports: "42s", "3m07s", "1h05m".
#pragma once
#include <string>

namespace echokv {

std::string format_duration(double seconds);

}  // namespace echokv
