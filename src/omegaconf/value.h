// A plain configuration tree: what OmegaConf.to_container(cfg, resolve=False)
// gives, and what YAML text parses to. The YAML emitter and parser work on
// it; the DictConfig view converts pickled graphs to and from it.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ckpt::omegaconf {

struct Value {
  enum class Type { Null, Bool, Int, Float, Str, Map, Seq };
  Type type = Type::Null;
  bool boolean = false;
  int64_t integer = 0;
  std::string big_int;  // decimal text when an Int does not fit in int64
  double real = 0.0;
  std::string str;
  std::vector<std::pair<Value, Value>> map;  // insertion order; keys are scalars
  std::vector<Value> seq;

  // Declared here, defined below the class: otherwise clang with libstdc++
  // instantiates std::pair<Value, Value> while Value is still incomplete.
  Value();
  static Value null();
  static Value of_bool(bool b);
  static Value of_int(int64_t i);
  static Value of_float(double d);
  static Value of_str(std::string s);
  static Value empty_map();
  static Value empty_seq();

  bool is_container() const { return type == Type::Map || type == Type::Seq; }
  // Map lookup by string key; nullptr if absent or not a map.
  const Value* find(const std::string& key) const;
  Value* find(const std::string& key);
  bool operator==(const Value& o) const;
};

inline Value::Value() = default;
inline Value Value::null() { return {}; }
inline Value Value::of_bool(bool b) { Value v; v.type = Type::Bool; v.boolean = b; return v; }
inline Value Value::of_int(int64_t i) { Value v; v.type = Type::Int; v.integer = i; return v; }
inline Value Value::of_float(double d) { Value v; v.type = Type::Float; v.real = d; return v; }
inline Value Value::of_str(std::string s) { Value v; v.type = Type::Str; v.str = std::move(s); return v; }
inline Value Value::empty_map() { Value v; v.type = Type::Map; return v; }
inline Value Value::empty_seq() { Value v; v.type = Type::Seq; return v; }

// An int and a float of the same number are equal (30 and 30.0, as Python's
// ==); other values compare with ==.
bool numerically_equal(const Value& a, const Value& b);

}  // namespace ckpt::omegaconf
