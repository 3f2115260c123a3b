// Every operation of the api as data, for front ends that are generic over
// them (the Python binding) and for tests: its name, inputs, options and
// result types (api/schema.h), and a call that takes the options as JSON and
// returns the result as JSON. The CLI calls the typed functions directly and
// prints their results with to_json; both front ends thus show one
// description of each operation.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "api/checkpoint.h"
#include "api/schema.h"
#include "util/env.h"
#include "util/error.h"  // the errors every operation throws

namespace ckpt::api {

struct Operation {
  std::string name;  // Python's function; the command is `cli` (name with '-' for '_' unless said)
  std::string cli;
  std::string doc;
  std::vector<std::string> inputs;      // paths given first, in order: {"file"}, {"a", "b"}, {"dir"}
  std::vector<std::string> positional;  // options that may also follow them by position: {"out"}, {"name"}
  std::string options_type, result_type;  // names in types(); the result may be "A | B" or "list[A]"
  bool progress = false;                  // takes a progress callback (a writing operation)
  // The result's type name (one of result_type's) and value.
  struct Returned {
    std::string type;
    Json value;
  };
  std::function<Returned(Env&, const std::vector<std::string>& inputs, const Json& options, const ProgressFn&)> call;
};

// ckpt's version ("0.1.0"): CMakeLists.txt's project version, the one place it is written.
const char* version();

// For a front end whose process exits after one command (the CLI), called
// first: the checkpoints' object graphs closed from now on, up to about 8 MiB
// of them (32,768 nodes), are left to the process's exit instead of being
// freed node by node, and the first large one has the heap grown for it at
// once, on huge pages where the kernel has them (pickle::Graph::leave_to_exit).
// A library user (the Python package) does not call it.
void prepare_one_command_process();

// Every operation, in the order the CLI's help lists them.
const std::vector<Operation>& operations();
// The operation of that name; UsageError naming the known ones otherwise.
const Operation& operation(const std::string& name);
// Every described type the operations use: name -> {"doc", "fields": [{name,
// type, doc, omit_empty}]}; option types also have "defaults".
const TypeTable& types();

}  // namespace ckpt::api
