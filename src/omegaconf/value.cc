#include "omegaconf/value.h"

#include <cmath>

namespace ckpt::omegaconf {

const Value* Value::find(const std::string& key) const {
  if (type != Type::Map) return nullptr;
  for (const auto& [k, v] : map)
    if (k.type == Type::Str && k.str == key) return &v;
  return nullptr;
}

Value* Value::find(const std::string& key) {
  return const_cast<Value*>(static_cast<const Value*>(this)->find(key));
}

// Structural equality. Floats compare by value, except that NaN equals NaN
// and 0.0 differs from -0.0: a tree equals its own copy, and a YAML round
// trip that loses a sign is a difference worth seeing. Container depth is
// bounded by whoever built the tree (the YAML parser caps it).
bool Value::operator==(const Value& o) const {
  if (type != o.type) return false;
  switch (type) {
    case Type::Null: return true;
    case Type::Bool: return boolean == o.boolean;
    case Type::Int: return integer == o.integer && big_int == o.big_int;
    case Type::Float:
      if (std::isnan(real) || std::isnan(o.real)) return std::isnan(real) && std::isnan(o.real);
      return real == o.real && std::signbit(real) == std::signbit(o.real);
    case Type::Str: return str == o.str;
    case Type::Map: return map == o.map;
    case Type::Seq: return seq == o.seq;
  }
  return false;
}

bool numerically_equal(const Value& a, const Value& b) {
  auto num = [](const Value& v, double& out) {
    if (v.type == Value::Type::Int) out = static_cast<double>(v.integer);
    else if (v.type == Value::Type::Float) out = v.real;
    else return false;
    return true;
  };
  double x, y;
  if (num(a, x) && num(b, y)) return x == y;
  return a == b;
}

}  // namespace ckpt::omegaconf
