// The shipped systemd unit is one systemd accepts: Type=notify (egressd says READY=1 itself), reload by
// SIGHUP, the settings from /etc/egressd/egressd.yaml, and only the capabilities identification needs.
#include <doctest/doctest.h>

#include <regex>
#include <string>

#include "tests/e2e/scenario.h"
#include "tests/support/temp_dir.h"

namespace egressd::test::e2e {

TEST_CASE("systemd/egressd.service passes systemd-analyze verify with the built binary" *
          doctest::timeout(60)) {
  const std::string unit = read_file(std::string(EGRESSD_SOURCE_DIR) + "/systemd/egressd.service");
  REQUIRE(unit.find("\nExecStart=/usr/local/bin/egressd run --config /etc/egressd/egressd.yaml\n") !=
          std::string::npos);
  CHECK(unit.find("\nType=notify\n") != std::string::npos);
  CHECK(unit.find("\nNotifyAccess=main\n") != std::string::npos);
  CHECK(unit.find("\nExecReload=/bin/kill -HUP $MAINPID\n") != std::string::npos);
  CHECK(unit.find("\nCapabilityBoundingSet=CAP_SYS_PTRACE CAP_DAC_READ_SEARCH\n") != std::string::npos);
  CHECK(unit.find("\nAmbientCapabilities=CAP_SYS_PTRACE CAP_DAC_READ_SEARCH\n") != std::string::npos);
  // READY=1 and the journal go over AF_UNIX; sock_diag needs AF_NETLINK.
  CHECK(unit.find("\nRestrictAddressFamilies=AF_INET AF_INET6 AF_NETLINK AF_UNIX\n") != std::string::npos);
  // Hiding other users' processes would hide the callers egressd must identify.
  CHECK(unit.find("\nProtectProc=") == std::string::npos);
  CHECK(unit.find("\nPrivateUsers=") == std::string::npos);
  // Without --ca-cert the CA is generated into $STATE_DIRECTORY; under ProtectSystem=strict only a
  // StateDirectory= is writable, so without it the service could not start.
  CHECK(unit.find("\nStateDirectory=egressd\n") != std::string::npos);
  CHECK(unit.find("--ca-cert") == std::string::npos);
  const TempDir dir;
  const std::string copy = dir.path() + "/egressd.service";
  write_file(copy, std::regex_replace(unit, std::regex("/usr/local/bin/egressd"), egressd_binary()));
  const RunResult verify = run({"systemd-analyze", "verify", copy});
  INFO(verify.out, verify.err);
  CHECK(verify.exit_code == 0);
  CHECK(verify.err.find(copy) == std::string::npos);  // no complaint names the unit
}

}  // namespace egressd::test::e2e
