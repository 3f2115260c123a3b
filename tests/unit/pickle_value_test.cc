#include "pickle/value.h"
#include "pickle/text.h"
#include "pickle/pickler.h"
#include "pickle/unpickler.h"
#include "util/error.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

using namespace ckpt::pickle;

TEST(PickleValue, DictItemsKeepOrderAndReplace) {
  Graph g;
  Node* d = g.dict();
  set_item(g, d, "b", g.integer(1));
  set_item(g, d, "a", g.integer(2));
  set_item(g, d, "b", g.integer(3));
  ASSERT_EQ(d->entries.size(), 2u);
  EXPECT_EQ(d->entries[0].first->text, "b");
  EXPECT_EQ(get_item(d, "b")->integer, 3);
  EXPECT_TRUE(erase_item(d, "b"));
  EXPECT_FALSE(erase_item(d, "b"));
  EXPECT_EQ(get_item(d, "b"), nullptr);
}

TEST(PickleValue, KeyEqualityFollowsPython) {
  Graph g;
  EXPECT_TRUE(key_equal(g.integer(1), g.boolean(true)));
  EXPECT_TRUE(key_equal(g.integer(2), g.real(2.0)));
  EXPECT_FALSE(key_equal(g.integer(2), g.str("2")));
  EXPECT_EQ(key_hash(g.integer(2)), key_hash(g.real(2.0)));
  EXPECT_TRUE(key_equal(g.tuple({g.str("a"), g.integer(1)}), g.tuple({g.str("a"), g.integer(1)})));
}

TEST(PickleValue, NodeLimitIsAnError) {
  Graph g(GraphLimits{3});
  g.none();
  g.none();
  g.none();
  EXPECT_THROW(g.none(), ckpt::FormatError);
}

TEST(PickleValue, KeyTextAsPythonStr) {
  Graph g;
  EXPECT_EQ(key_text(g.str("w")), "w");
  EXPECT_EQ(key_text(g.integer(-3)), "-3");
  EXPECT_EQ(key_text(g.real(0.1)), "0.1");  // repr, not %.17g's 0.10000000000000001
  EXPECT_EQ(key_text(g.boolean(true)), "True");
  EXPECT_EQ(key_text(g.none()), "None");
  EXPECT_EQ(key_text(g.tuple({g.integer(1)})), "<tuple>");
  EXPECT_EQ(key_text(nullptr), "?");
  // An int past int64 (LONG bytes of 2^64), in decimal.
  Node* big = g.integer(0);
  int64_t small = 0;
  ASSERT_EQ(parse_decimal("18446744073709551616", small, big->text), "");
  ASSERT_TRUE(big->is_big_int());
  EXPECT_EQ(key_text(big), "18446744073709551616");
}

TEST(PickleValue, LongDecimalRoundTrip) {
  for (const char* text : {"0", "-1", "127", "-128", "128", "9223372036854775808", "-9223372036854775809",
                           "-340282366920938463463374607431768211456"}) {
    int64_t small = 0;
    std::string big;
    ASSERT_EQ(parse_decimal(text, small, big), "") << text;
    EXPECT_EQ(big.empty() ? std::to_string(small) : long_to_decimal(big), text);
    if (big.empty()) {
      EXPECT_EQ(long_to_decimal(encode_long(small)), text);
    }
  }
  EXPECT_EQ(long_to_decimal(""), "0");
  EXPECT_EQ(long_to_decimal("\xff"), "-1");
}

TEST(PickleValue, ClassNameForMessages) {
  Graph g;
  auto obj = [&](const char* mod, const char* name) { return g.object(How::Reduce, g.global(mod, name), g.tuple()); };
  EXPECT_EQ(class_name(obj("collections", "OrderedDict")), "OrderedDict");
  EXPECT_EQ(class_name(obj("omegaconf.nodes", "AnyNode")), "AnyNode");
  EXPECT_EQ(class_name(obj("builtins", "set")), "set");
  EXPECT_EQ(class_name(obj("torch.nn.modules.linear", "Linear")), "torch.nn.modules.linear.Linear");
  EXPECT_EQ(class_name(g.dict()), "object");
}

TEST(PickleValue, ChildrenAlongChosenEdges) {
  Graph g;
  Node* key = g.str("k");
  Node* value = g.integer(1);
  Node* item = g.integer(2);
  Node* obj = g.object(How::Reduce, g.global("m", "C"), g.tuple({item}));
  obj->state = g.dict();
  obj->entries.emplace_back(key, value);
  obj->items.push_back(item);
  std::vector<const Node*> seen;
  for_each_child(static_cast<const Node*>(obj), kAllEdges, [&](const Node* c) { seen.push_back(c); });
  EXPECT_EQ(seen, (std::vector<const Node*>{obj->callable, obj->args, obj->state, item, key, value}));
  seen.clear();
  for_each_child(static_cast<const Node*>(obj), kValueEdges | kStateEdge, [&](const Node* c) { seen.push_back(c); });
  EXPECT_EQ(seen, (std::vector<const Node*>{obj->state, value}));
}

TEST(PickleValue, WalkVisitsEachNodeOnceThroughCycles) {
  Graph g;
  Node* list = g.list();
  Node* pid = g.persid(g.tuple({g.str("storage")}));
  list->items = {list, pid, list};  // a cycle and a repeat
  size_t visits = 0, strings = 0;
  walk_graph(list, kAllEdges, [&](const Node* n) {
    ++visits;
    strings += n->kind == Kind::Str;
    return true;
  });
  EXPECT_EQ(visits, 4u);  // list, persid, its tuple, the string
  EXPECT_EQ(strings, 1u);
  visits = 0;
  walk_graph(list, kAllEdges & ~kPidEdge, [&](const Node*) { return ++visits, true; });
  EXPECT_EQ(visits, 2u);  // the pid's tuple is not reached
  visits = 0;
  walk_graph(list, kAllEdges, [&](const Node*) { return ++visits, false; });  // no descent
  EXPECT_EQ(visits, 1u);
}

TEST(PickleValue, MovedGraphKeepsItsNodesAndTheSourceIsReusable) {
  Graph a;
  std::vector<Node*> made;
  for (int i = 0; i < 100; ++i) made.push_back(a.integer(i));  // several blocks
  a.root = a.list(made);
  Graph b = std::move(a);
  EXPECT_EQ(b.size(), 101u);
  EXPECT_EQ(b.root->items[99]->integer, 99);
  EXPECT_EQ(a.size(), 0u);
  Node* n = a.str("again");  // the moved-from graph makes nodes anew
  EXPECT_EQ(n->text, "again");
  EXPECT_EQ(a.size(), 1u);
  Graph c;
  c.none();
  c = std::move(b);
  EXPECT_EQ(c.size(), 101u);
  EXPECT_EQ(c.root->items[0]->integer, 0);
}

TEST(PickleValue, WalkNonLeavesVisitsWalkGraphsContainersInOrder) {
  Graph g;
  Node* shared = g.tuple({g.str("s"), g.integer(1)});
  Node* d = g.dict();
  d->entries.emplace_back(g.str("k"), g.list({shared, g.real(1.5), g.persid(g.tuple({g.str("storage")}))}));
  d->entries.emplace_back(g.str("again"), shared);
  Node* obj = g.object(How::Reduce, g.global("collections", "OrderedDict"), g.tuple());
  obj->entries.emplace_back(g.str("self"), d);  // a cycle back to the dict
  d->entries.emplace_back(g.str("obj"), obj);
  g.root = d;
  std::vector<const Node*> all, inner;
  walk_graph(g.root, kAllEdges, [&](const Node* n) {
    if (!is_leaf_kind(n->kind)) all.push_back(n);
    return true;
  });
  walk_non_leaves(g.root, kAllEdges, [&](const Node* n) {
    inner.push_back(n);
    return true;
  });
  EXPECT_EQ(inner, all);
  EXPECT_EQ(inner.size(), 7u);  // dict, list, tuple, persid, its tuple, object, its args
  size_t n = 0;
  walk_non_leaves(g.str("leaf"), kAllEdges, [&](const Node*) { return ++n, true; });
  EXPECT_EQ(n, 0u);
}

TEST(PickleValue, KwargsAndPidShareASlotAndEachIsVisitedByItsKind) {
  Graph g;
  Node* kwargs = g.dict();
  Node* obj = g.object(How::NewObjEx, g.global("mod", "Cls"), g.tuple());
  obj->kwargs = kwargs;
  Node* id = g.tuple({g.str("storage")});
  Node* pid = g.persid(id);
  EXPECT_EQ(pid->pid, id);
  EXPECT_EQ(pid->kwargs, id);  // the same slot: no node has both
  std::vector<const Node*> seen;
  auto collect = [&](const Node* n, unsigned edges) {
    seen.clear();
    for_each_child(n, edges, [&](const Node* c) { seen.push_back(c); });
    return seen;
  };
  EXPECT_EQ(collect(obj, kCallEdges), (std::vector<const Node*>{obj->callable, obj->args, kwargs}));
  EXPECT_TRUE(collect(obj, kPidEdge).empty());  // an Object's kwargs are no pid
  EXPECT_TRUE(collect(pid, kCallEdges).empty());  // a PersId's pid is no kwargs
  EXPECT_EQ(collect(pid, kPidEdge), (std::vector<const Node*>{id}));
}

TEST(PickleValue, GlobalNamesReadAsStringsAndCopy) {
  Graph g;
  Node* glob = g.global("torch._utils", "_rebuild_tensor_v2");
  EXPECT_EQ(glob->name, "_rebuild_tensor_v2");
  EXPECT_TRUE(glob->is_global("torch._utils", "_rebuild_tensor_v2"));
  EXPECT_FALSE(glob->is_global("torch._utils", "_rebuild_tensor"));
  const std::string& s = glob->name;
  EXPECT_EQ(s.size(), 18u);
  EXPECT_EQ("torch._utils." + glob->name, "torch._utils._rebuild_tensor_v2");
  Node* other = g.str("x");
  EXPECT_TRUE(other->name.empty());  // no name: empty, nothing allocated
  EXPECT_EQ(other->name, "");
  NodeName copy = glob->name;
  glob->name = "_rebuild_parameter";
  EXPECT_EQ(copy, "_rebuild_tensor_v2");  // a copy owns its text
  EXPECT_EQ(glob->name, "_rebuild_parameter");
  copy = other->name;
  EXPECT_TRUE(copy.empty());
  EXPECT_TRUE(glob->name == NodeName(glob->name));
}

TEST(PickleValue, WalkNonLeavesSizedForTheGraphVisitsTheSameNodes) {
  Graph g;
  std::vector<Node*> lists;
  for (int i = 0; i < 3000; ++i) lists.push_back(g.list({g.integer(i), g.str("s")}));
  g.root = g.dict();
  for (int i = 0; i < 3000; ++i) g.root->entries.emplace_back(g.str("k" + std::to_string(i)), lists[i % 1000]);
  EXPECT_EQ(g.non_leaves_made(), 3001u);
  std::vector<const Node*> grown, sized;
  walk_non_leaves(g.root, kAllEdges, [&](const Node* n) { return grown.push_back(n), true; });
  walk_non_leaves(g.root, kAllEdges, [&](const Node* n) { return sized.push_back(n), true; }, g.non_leaves_made());
  EXPECT_EQ(sized, grown);
  EXPECT_EQ(sized.size(), 1001u);  // the dict and the 1,000 lists it reaches, once each
}

TEST(PickleValue, GraphsLeftToExitKeepTheirNodesUpToTheAllowance) {
  // A graph within the allowance is not destroyed: its nodes stay as they
  // were (under ASan a freed node would be a use after free here) and stay
  // reachable, so LeakSanitizer reports nothing at the test's exit.
  Graph::leave_to_exit(100);
  const Node* kept = nullptr;
  {
    Graph g;
    for (int i = 0; i < 40; ++i) g.integer(i);
    kept = g.str("a string too long for the small-string buffer");
  }
  EXPECT_EQ(kept->kind, Kind::Str);
  EXPECT_EQ(kept->text, "a string too long for the small-string buffer");
  {
    Graph big;  // 41 of 100 used: 70 more nodes are over the allowance, so freed
    for (int i = 0; i < 70; ++i) big.integer(i);
  }
  {
    Graph small;  // still 59 left
    for (int i = 0; i < 59; ++i) small.integer(i);
  }
  Graph::leave_to_exit(0);  // the default again for the other tests
  Graph freed;
  freed.str("freed as usual");
}

// In a process that leaves graphs to its exit (the CLI), the first large
// pickle grows the heap for its graph (util/process_heap): the graph read
// over that heap is the same, pickled back byte for byte. Run in a child
// process: it changes malloc's settings process-wide.
TEST(PickleValue, LargeGraphInAShortProcessReadsTheSame) {
  auto read_back = [] {
    Graph g;
    Node* items = g.list();
    for (int i = 0; i < 6000; ++i)
      items->items.push_back(i % 2 ? g.integer(i) : g.str("key number " + std::to_string(i) + " of the list"));
    g.root = items;
    std::string bytes = pickle(g.root);
    if (bytes.size() < (64u << 10)) std::exit(3);  // over before_large_graph's 32 KiB
    Graph::leave_to_exit(1 << 20);
    Graph again = unpickle(bytes);
    std::exit(pickle(again.root) == bytes ? 0 : 4);
  };
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(read_back(), ::testing::ExitedWithCode(0), "");
}
