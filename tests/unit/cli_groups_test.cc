// The command-group table main uses to register only the named command's
// group (cli/commands.h): each group's names are exactly the commands it
// registers, in order, and every command is found by name. A stale table
// would not change what the CLI does, only make `ckpt CMD` build more.
#include <CLI/CLI.hpp>
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "cli/commands.h"

namespace {

using ckpt::cli::CommandGroup;

std::string names_of(CLI::App& app) {
  std::string s;
  for (CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    s += (s.empty() ? "" : " ") + sub->get_name();
  return s;
}

TEST(CliGroups, NamesAreWhatEachGroupRegisters) {
  ckpt::cli::Context ctx{ckpt::Env::Default()};
  std::set<std::string> seen;
  for (const CommandGroup& group : ckpt::cli::command_groups()) {
    CLI::App app;
    group.add(app, ctx);
    EXPECT_EQ(names_of(app), std::string(group.commands));
    for (CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
      EXPECT_EQ(ckpt::cli::group_of(sub->get_name()), &group) << sub->get_name();
      EXPECT_TRUE(seen.insert(sub->get_name()).second) << sub->get_name() << " in two groups";
    }
  }
  EXPECT_TRUE(seen.count("scan"));
  EXPECT_TRUE(seen.count("info"));
}

TEST(CliGroups, OnlyWholeNamesMatch) {
  EXPECT_EQ(ckpt::cli::group_of(""), nullptr);
  EXPECT_EQ(ckpt::cli::group_of("sca"), nullptr);
  EXPECT_EQ(ckpt::cli::group_of("scann"), nullptr);
  EXPECT_EQ(ckpt::cli::group_of("Scan"), nullptr);
  EXPECT_EQ(ckpt::cli::group_of("help"), nullptr);  // the docs group: registered after every other
  EXPECT_EQ(ckpt::cli::group_of("info ls"), nullptr);
  EXPECT_NE(ckpt::cli::group_of("to-dcp"), nullptr);
  EXPECT_NE(ckpt::cli::group_of("verify"), nullptr);  // the last of its list
}

}  // namespace
