// The one description of the api's option and result structs. A described
// struct names its fields once, in order, in a static `describe`:
//
//   struct CompactResult {
//     static constexpr const char* kName = "CompactResult";
//     static constexpr const char* kDoc = "the file's size before and after";
//     uint64_t bytes_before = 0, bytes_after = 0;
//     template <class V> static void describe(V& v) {
//       v.field("bytes_before", &CompactResult::bytes_before, "bytes of FILE before");
//       v.field("bytes_after", &CompactResult::bytes_after, "bytes of FILE after");
//     }
//   };
//
// From that list come JSON in both directions (to_json: the CLI's --json and
// what Python's results hold; from_json: options from Python's keyword
// arguments, errors naming the field), and the type descriptions that the
// Python binding builds its functions, result classes, docstrings and stubs
// from (describe_type). Field types: bool, integers, double, std::string,
// Json, std::optional, std::vector, std::map<std::string, ...>, std::variant
// and other described structs. `v.flatten(&T::member)` lists a described
// member's fields as the struct's own (OutputOptions in EditOptions).
#pragma once
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "util/error.h"

namespace ckpt::api {

using Json = nlohmann::ordered_json;

// How a field is written: Always, or left out when it is empty (nullopt, "",
// [], {}, false or 0), for the fields of a tensor that only some kinds have.
enum class Presence { Always, OmitEmpty };

template <class T>
concept Described = requires {
  { T::kName } -> std::convertible_to<const char*>;
  { T::kDoc } -> std::convertible_to<const char*>;
};

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};
template <class T>
struct is_vector : std::false_type {};
template <class T>
struct is_vector<std::vector<T>> : std::true_type {};
template <class T>
struct is_map : std::false_type {};
template <class T>
struct is_map<std::map<std::string, T>> : std::true_type {};
template <class T>
struct is_variant : std::false_type {};
template <class... Ts>
struct is_variant<std::variant<Ts...>> : std::true_type {};

// ------------------------------------------------------------------ to JSON

template <class T>
Json to_json(const T& value);

template <class T>
bool is_empty_value(const T& v) {
  if constexpr (is_optional<T>::value) return !v.has_value();
  else if constexpr (std::is_same_v<T, bool>) return !v;
  else if constexpr (std::is_same_v<T, std::string> || is_vector<T>::value || is_map<T>::value) return v.empty();
  else if constexpr (std::is_arithmetic_v<T>) return v == 0;
  else return false;
}

template <class S>
struct JsonWriter {
  const S& object;
  Json& out;
  template <class M>
  void field(const char* name, M S::*member, const char*, Presence presence = Presence::Always) {
    const M& v = object.*member;
    if (presence == Presence::OmitEmpty && is_empty_value(v)) return;
    out[name] = to_json(v);
  }
  template <class M>
  void flatten(M S::*member) {
    JsonWriter<M> inner{object.*member, out};
    M::describe(inner);
  }
};

template <class T>
Json to_json(const T& value) {
  if constexpr (Described<T>) {
    Json out = Json::object();
    JsonWriter<T> w{value, out};
    T::describe(w);
    return out;
  } else if constexpr (is_optional<T>::value) {
    return value ? to_json(*value) : Json(nullptr);
  } else if constexpr (is_vector<T>::value) {
    Json out = Json::array();
    for (const auto& item : value) out.push_back(to_json(item));
    return out;
  } else if constexpr (is_map<T>::value) {
    Json out = Json::object();
    for (const auto& [k, v] : value) out[k] = to_json(v);
    return out;
  } else if constexpr (is_variant<T>::value) {
    return std::visit([](const auto& alt) { return to_json(alt); }, value);
  } else if constexpr (std::is_floating_point_v<T>) {
    return std::isfinite(value) ? Json(value) : Json(nullptr);  // JSON has no NaN or Inf
  } else {
    return Json(value);  // bool, integers, std::string, Json
  }
}

// The described name of a value's type: "StatsRow", "list[StatsRow]", the
// alternative a variant holds.
template <class T>
std::string type_name_of(const T& value);

// ---------------------------------------------------------------- from JSON

// An option given the wrong type or an unknown name: names the field.
[[noreturn]] void bad_option(const std::string& field, const std::string& what);

template <class T>
void from_json(const Json& j, T& out, const std::string& field);

template <class S>
struct FieldNames {
  std::set<std::string> names;
  template <class M>
  void field(const char* name, M S::*, const char*, Presence = Presence::Always) {
    names.insert(name);
  }
  template <class M>
  void flatten(M S::*) {
    FieldNames<M> inner;
    M::describe(inner);
    names.insert(inner.names.begin(), inner.names.end());
  }
};

template <class S>
struct JsonReader {
  const Json& in;
  S& object;
  template <class M>
  void field(const char* name, M S::*member, const char*, Presence = Presence::Always) {
    if (auto it = in.find(name); it != in.end()) from_json(*it, object.*member, name);
  }
  template <class M>
  void flatten(M S::*member) {
    JsonReader<M> inner{in, object.*member};
    M::describe(inner);
  }
};

template <class T>
void from_json(const Json& j, T& out, const std::string& field) {
  if constexpr (Described<T>) {
    if (!j.is_object()) bad_option(field, "expected a mapping of options");
    FieldNames<T> names;
    T::describe(names);
    for (const auto& [key, value] : j.items())
      if (!names.names.count(key)) {
        std::string known;
        for (const auto& n : names.names) known += (known.empty() ? "" : ", ") + n;
        bad_option(key, "is not an option here (options: " + known + ")");
      }
    JsonReader<T> r{j, out};
    T::describe(r);
  } else if constexpr (is_optional<T>::value) {
    if (j.is_null()) {
      out.reset();
    } else {
      typename T::value_type v{};
      from_json(j, v, field);
      out = std::move(v);
    }
  } else if constexpr (is_vector<T>::value) {
    out.clear();
    if (j.is_array()) {
      for (const auto& item : j) from_json(item, out.emplace_back(), field);
    } else if constexpr (std::is_same_v<typename T::value_type, std::string>) {
      if (!j.is_string()) bad_option(field, "expected a string or a list of strings");
      out.push_back(j.get<std::string>());  // one value for a list: "optim.lr=1", not its letters
    } else {
      bad_option(field, "expected a list");
    }
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!j.is_boolean()) bad_option(field, "expected True or False");
    out = j.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    if (!j.is_number_integer()) bad_option(field, "expected a whole number");
    if (j.is_number_unsigned() ? j.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<T>::max())
                               : (j.get<int64_t>() < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
                                  (j.get<int64_t>() > 0 &&
                                   static_cast<uint64_t>(j.get<int64_t>()) >
                                       static_cast<uint64_t>(std::numeric_limits<T>::max()))))
      bad_option(field, "out of range");
    out = j.is_number_unsigned() ? static_cast<T>(j.get<uint64_t>()) : static_cast<T>(j.get<int64_t>());
  } else if constexpr (std::is_floating_point_v<T>) {
    // JSON has no NaN or Inf: Python sends float('nan'), float('inf') and
    // float('-inf') as their repr, so that the operation, not the JSON
    // parser, decides about them (api::diff refuses a non-finite tolerance).
    if (j.is_string() && (j == "nan" || j == "inf" || j == "-inf")) {
      out = j == "nan" ? std::numeric_limits<T>::quiet_NaN()
                       : (j == "inf" ? std::numeric_limits<T>::infinity() : -std::numeric_limits<T>::infinity());
      return;
    }
    if (!j.is_number()) bad_option(field, "expected a number");
    out = j.get<T>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    // Sizes and versions may come as numbers (max_shard_size=500_000_000).
    if (j.is_number_integer()) out = j.dump();
    else if (j.is_string()) out = j.get<std::string>();
    else if (j.is_null()) out.clear();  // None: not given, as "" (edit(path, None, dry_run=True))
    else bad_option(field, "expected a string");
  } else if constexpr (std::is_same_v<T, Json>) {
    out = j;
  } else {
    static_assert(sizeof(T) == 0, "from_json: a type options do not use");
  }
}

// -------------------------------------------------------------- descriptions

// Python's spelling of a field's type ("str", "list[str]", "int | None",
// "StatsRow"), for docstrings and stubs.
template <class T>
std::string type_text() {
  if constexpr (Described<T>) return T::kName;
  else if constexpr (is_optional<T>::value) return type_text<typename T::value_type>() + " | None";
  else if constexpr (is_vector<T>::value) return "list[" + type_text<typename T::value_type>() + "]";
  else if constexpr (is_map<T>::value) return "dict[str, " + type_text<typename T::mapped_type>() + "]";
  else if constexpr (is_variant<T>::value) {
    std::string s;
    [&]<class... Ts>(std::variant<Ts...>*) {
      ((s += (s.empty() ? "" : " | ") + type_text<Ts>()), ...);
    }(static_cast<T*>(nullptr));
    return s;
  } else if constexpr (std::is_same_v<T, bool>) return "bool";
  else if constexpr (std::is_integral_v<T>) return "int";
  else if constexpr (std::is_floating_point_v<T>) return "float";
  else if constexpr (std::is_same_v<T, std::string>) return "str";
  else return "Any";
}

// Every described type reachable from T, by name: {"doc", "fields": [{"name",
// "type", "doc", "omit_empty"}]}, plus "defaults" (a default-constructed
// value's JSON) for option structs.
using TypeTable = std::map<std::string, Json>;

template <class T>
void add_types(TypeTable& table);

template <class S>
struct FieldDocs {
  TypeTable& table;
  Json& fields;
  template <class M>
  void field(const char* name, M S::*, const char* doc, Presence presence = Presence::Always) {
    fields.push_back({{"name", name}, {"type", type_text<M>()}, {"doc", doc},
                      {"omit_empty", presence == Presence::OmitEmpty}});
    add_types<M>(table);
  }
  template <class M>
  void flatten(M S::*) {
    FieldDocs<M> inner{table, fields};
    M::describe(inner);
  }
};

template <class T>
void add_types(TypeTable& table) {
  if constexpr (Described<T>) {
    if (table.count(T::kName)) return;
    Json& entry = table[T::kName];
    entry = {{"doc", T::kDoc}, {"fields", Json::array()}};
    Json fields = Json::array();
    FieldDocs<T> docs{table, fields};
    T::describe(docs);
    table[T::kName]["fields"] = std::move(fields);
  } else if constexpr (is_optional<T>::value || is_vector<T>::value) {
    add_types<typename T::value_type>(table);
  } else if constexpr (is_map<T>::value) {
    add_types<typename T::mapped_type>(table);
  } else if constexpr (is_variant<T>::value) {
    [&]<class... Ts>(std::variant<Ts...>*) { (add_types<Ts>(table), ...); }(static_cast<T*>(nullptr));
  }
}

template <class T>
std::string type_name_of(const T& value) {
  if constexpr (is_variant<T>::value) return std::visit([](const auto& alt) { return type_name_of(alt); }, value);
  else if constexpr (is_vector<T>::value) {
    if constexpr (is_variant<typename T::value_type>::value) return "list[Any]";
    else return type_text<T>();
  } else return type_text<T>();
}

}  // namespace ckpt::api
