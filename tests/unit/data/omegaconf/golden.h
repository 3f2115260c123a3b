// Readers for the golden files made by tests/unit/data/omegaconf/make_yaml_golden.py.
#pragma once
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "omegaconf/value.h"

namespace ckpt::omegaconf::testing {

inline std::string golden_path(const std::string& name) {
  return std::string(CKPT_SOURCE_DIR) + "/tests/unit/data/omegaconf/" + name;
}

inline std::vector<std::vector<std::string>> read_golden(const std::string& name) {
  std::ifstream in(golden_path(name));
  if (!in) throw std::runtime_error("cannot open " + golden_path(name));
  std::vector<std::vector<std::string>> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::vector<std::string> fields;
    std::stringstream ss(line);
    std::string f;
    while (std::getline(ss, f, '\t')) fields.push_back(f);
    rows.push_back(fields);
  }
  return rows;
}

inline std::string unhex(const std::string& h) {
  std::string out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16)));
  return out;
}

// Decodes the prefix tree encoding (see the script's docstring).
inline Value decode_tree(const std::string& text) {
  std::vector<std::string> tokens;
  std::stringstream ss(text);
  std::string t;
  while (ss >> t) tokens.push_back(t);
  struct Frame {
    Value v;
    size_t remaining;  // children still to read (maps: keys + values)
    bool have_key = false;
    Value key;
  };
  std::vector<Frame> stack;
  Value root;
  auto place = [&](Value v) -> bool {  // returns true when v is the root
    if (stack.empty()) {
      root = std::move(v);
      return true;
    }
    Frame& f = stack.back();
    if (f.v.type == Value::Type::Seq) {
      f.v.seq.push_back(std::move(v));
    } else if (!f.have_key) {
      f.key = std::move(v);
      f.have_key = true;
    } else {
      f.v.map.emplace_back(std::move(f.key), std::move(v));
      f.have_key = false;
    }
    --f.remaining;
    return false;
  };
  for (const auto& tok : tokens) {
    char c = tok[0];
    std::string rest = tok.substr(1);
    if (c == 'M' || c == 'S') {
      size_t n = std::stoul(rest);
      Frame f{c == 'M' ? Value::empty_map() : Value::empty_seq(), c == 'M' ? 2 * n : n, false, Value()};
      stack.push_back(std::move(f));
    } else {
      Value v;
      if (c == 'N') v = Value::null();
      else if (c == 'B') v = Value::of_bool(rest == "1");
      else if (c == 'I') {
        v = Value::of_int(0);
        errno = 0;
        char* end = nullptr;
        long long x = std::strtoll(rest.c_str(), &end, 10);
        if (errno == ERANGE) v.big_int = rest;
        else v.integer = x;
      } else if (c == 'F') v = Value::of_float(std::strtod(rest.c_str(), nullptr));
      else if (c == 'T') v = Value::of_str(unhex(rest));
      else throw std::runtime_error("bad token " + tok);
      place(std::move(v));
    }
    while (!stack.empty() && stack.back().remaining == 0) {
      Value done = std::move(stack.back().v);
      stack.pop_back();
      place(std::move(done));
    }
  }
  return root;
}

}  // namespace ckpt::omegaconf::testing
