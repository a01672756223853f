// A registered method from its YAML entry, prepared for a model (what the eval runner does).
#pragma once
#include <memory>
#include <string>

#include "methods/registry.h"

namespace echokv::testing {

inline std::unique_ptr<Method> prepared_method(LlamaModel& model, const std::string& yaml, const std::string& model_dir = "") {
  auto method = make_method_from_yaml(yaml);
  MethodContext context;
  context.model = &model;
  context.model_dir = model_dir;
  method->prepare(context);
  return method;
}

}  // namespace echokv::testing
