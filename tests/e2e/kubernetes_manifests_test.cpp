// examples/kubernetes: every manifest parses (python3-yaml) into a known kind with its apiVersion; the
// ConfigMap's policy passes `egressd check`; the DaemonSet's volumes, mounts and flags line up; and the
// container's command line, with the mounts laid out as the kubelet lays them out, runs the real egressd:
// it becomes ready, answers the probe's and Prometheus's paths, writes denials to stdout (a pipe, as a
// container runtime gives it) and reloads the policy when the ConfigMap's ..data symlink is swapped.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/e2e/scenario.h"
#include "tests/support/temp_dir.h"
#include "tests/support/unique_fd.h"
#include "tests/support/wait.h"

namespace egressd::test::e2e {
namespace {

const std::string kManifestDir = std::string(EGRESSD_SOURCE_DIR) + "/examples/kubernetes";

// Every examples/kubernetes/*.yaml as [{"file": NAME, "documents": [...]}], sorted by name, read by
// PyYAML's safe loader (YAML 1.1, as Kubernetes reads it: 0400 is octal).
constexpr const char* kYamlToJson = R"(
import glob, json, os, sys, yaml
manifests = []
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.yaml"))):
    with open(path) as f:
        documents = [d for d in yaml.safe_load_all(f) if d is not None]
    manifests.append({"file": os.path.basename(path), "documents": documents})
json.dump(manifests, sys.stdout)
)";

struct Manifest {
  std::string file;
  Json document;
};

const std::vector<Manifest>& manifests() {
  static const std::vector<Manifest> all = [] {
    const RunResult converted = run({"/usr/bin/python3", "-c", kYamlToJson, kManifestDir});
    if (converted.exit_code != 0)
      throw std::runtime_error("python3-yaml could not read the manifests: " + converted.err);
    std::vector<Manifest> parsed;
    const Json files = Json::parse(converted.out);
    for (size_t i = 0; i < files.size(); ++i) {
      const Json& documents = files.at(i)["documents"];
      for (size_t j = 0; j < documents.size(); ++j)
        parsed.push_back({files.at(i)["file"].str(), documents.at(j)});
    }
    return parsed;
  }();
  return all;
}

// The one document of `kind` (the test fails when there is not exactly one).
const Json& only(const std::string& kind) {
  const Json* found = nullptr;
  for (const Manifest& manifest : manifests()) {
    if (manifest.document["kind"] != kind) continue;
    INFO("a second ", kind, " in ", manifest.file);
    REQUIRE(found == nullptr);
    found = &manifest.document;
  }
  INFO("no ", kind);
  REQUIRE(found != nullptr);
  return *found;
}

const Json& pod_spec() {
  return only("DaemonSet")["spec"]["template"]["spec"];
}

const Json& container() {
  const Json& containers = pod_spec()["containers"];
  REQUIRE(containers.size() == 1);
  return containers.at(0);
}

std::vector<std::string> strings(const Json& array) {
  std::vector<std::string> out;
  for (size_t i = 0; i < array.size(); ++i) out.push_back(array.at(i).str());
  return out;
}

// The container's `--flag=value` arguments after `run`, by flag.
std::map<std::string, std::string> flags() {
  const std::vector<std::string> args = strings(container()["args"]);
  REQUIRE(!args.empty());
  CHECK(args.front() == "run");
  std::map<std::string, std::string> out;
  for (size_t i = 1; i < args.size(); ++i) {
    const size_t eq = args[i].find('=');
    INFO("argument ", args[i]);
    REQUIRE(args[i].starts_with("--"));
    REQUIRE(eq != std::string::npos);
    REQUIRE(out.emplace(args[i].substr(0, eq), args[i].substr(eq + 1)).second);
  }
  return out;
}

// The volume named `name` in the pod spec, and its mount in the container.
const Json& volume(const std::string& name) {
  const Json& volumes = pod_spec()["volumes"];
  for (size_t i = 0; i < volumes.size(); ++i) {
    if (volumes.at(i)["name"] == name) return volumes.at(i);
  }
  FAIL("no volume named ", name);
  throw std::logic_error("unreachable");
}
const Json& mount(const std::string& name) {
  const Json& mounts = container()["volumeMounts"];
  for (size_t i = 0; i < mounts.size(); ++i) {
    if (mounts.at(i)["name"] == name) return mounts.at(i);
  }
  FAIL("no volumeMount named ", name);
  throw std::logic_error("unreachable");
}

bool labels_select(const Json& selector, const Json& labels) {
  for (const std::string& key : selector.keys()) {
    if (!labels.has(key) || labels[key].str() != selector[key].str()) return false;
  }
  return !selector.keys().empty();
}

uint16_t metrics_port() {
  const Json& ports = container()["ports"];
  for (size_t i = 0; i < ports.size(); ++i) {
    if (ports.at(i)["name"] == "metrics")
      return static_cast<uint16_t>(ports.at(i)["containerPort"].integer());
  }
  FAIL("no container port named metrics");
  return 0;
}

TEST_CASE(
    "kubernetes manifests: each document is a known kind with its apiVersion, a name and the namespace" *
    doctest::timeout(60)) {
  const std::map<std::string, std::string> api_versions = {
      {"Namespace", "v1"},
      {"ServiceAccount", "v1"},
      {"ConfigMap", "v1"},
      {"DaemonSet", "apps/v1"},
      {"PodMonitor", "monitoring.coreos.com/v1"},
      {"Kustomization", "kustomize.config.k8s.io/v1beta1"}};
  std::vector<std::string> files;
  for (const Manifest& manifest : manifests()) {
    INFO(manifest.file, ": ", manifest.document);
    const Json& document = manifest.document;
    const std::string kind = document["kind"].str();
    REQUIRE(api_versions.contains(kind));
    CHECK(document["apiVersion"] == api_versions.at(kind));
    if (std::find(files.begin(), files.end(), manifest.file) == files.end()) files.push_back(manifest.file);
    if (kind == "Kustomization") continue;
    CHECK(!document["metadata"]["name"].str().empty());
    if (kind == "Namespace") {
      CHECK(document["metadata"]["name"] == "egressd");
      CHECK(document["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged");
    } else {
      CHECK(document["metadata"]["namespace"] == "egressd");
    }
  }
  for (const char* kind : {"Namespace", "ServiceAccount", "ConfigMap", "DaemonSet", "PodMonitor"}) only(kind);
  // kubectl apply -k applies everything but the PodMonitor (it needs the Prometheus Operator's CRDs).
  std::vector<std::string> want;
  for (const std::string& file : files) {
    if (file != "kustomization.yaml" && file != "podmonitor.yaml") want.push_back(file);
  }
  std::vector<std::string> listed = strings(only("Kustomization")["resources"]);
  std::sort(listed.begin(), listed.end());
  CHECK(listed == want);
}

TEST_CASE(
    "kubernetes manifests: the ConfigMap carries policies/claude-code.yaml unchanged, and it checks clean" *
    doctest::timeout(60)) {
  const std::string policy = only("ConfigMap")["data"]["policy.yaml"].str();
  CHECK(policy == read_file(std::string(EGRESSD_SOURCE_DIR) + "/policies/claude-code.yaml"));
  const TempDir dir;
  write_file(dir.file("policy.yaml"), policy);
  const RunResult check = run({egressd_binary(), "check", dir.file("policy.yaml")});
  INFO(check.out, check.err);
  CHECK(check.exit_code == 0);
  CHECK(check.out.find("warning") == std::string::npos);
}

TEST_CASE(
    "kubernetes manifests: the DaemonSet shares the node's network and PIDs with exactly two capabilities" *
    doctest::timeout(60)) {
  const Json& daemonset = only("DaemonSet");
  CHECK(labels_select(daemonset["spec"]["selector"]["matchLabels"],
                      daemonset["spec"]["template"]["metadata"]["labels"]));
  const Json& spec = pod_spec();
  CHECK(spec["hostNetwork"].boolean());
  CHECK(spec["hostPID"].boolean());
  CHECK(spec["dnsPolicy"] == "ClusterFirstWithHostNet");
  CHECK(spec["serviceAccountName"] == only("ServiceAccount")["metadata"]["name"].str());
  CHECK_FALSE(spec["automountServiceAccountToken"].boolean());
  CHECK_FALSE(only("ServiceAccount")["automountServiceAccountToken"].boolean());

  const Json& security = container()["securityContext"];
  std::vector<std::string> added = strings(security["capabilities"]["add"]);
  std::sort(added.begin(), added.end());
  CHECK(added == std::vector<std::string>{"DAC_READ_SEARCH", "SYS_PTRACE"});
  CHECK(strings(security["capabilities"]["drop"]) == std::vector<std::string>{"ALL"});
  CHECK_FALSE(security["allowPrivilegeEscalation"].boolean());
  CHECK(security["readOnlyRootFilesystem"].boolean());
  CHECK_FALSE(security.has("privileged"));
  CHECK(strings(container()["command"]) == std::vector<std::string>{"/usr/local/bin/egressd"});
  // Clients in the node's network namespace reach it on the node's loopback.
  CHECK(flags().at("--listen") == "127.0.0.1:3128");
  CHECK(flags().at("--deny-log") == "/dev/stdout");
}

TEST_CASE("kubernetes manifests: probes, scrape annotations and the PodMonitor all use the --metrics port" *
          doctest::timeout(60)) {
  const uint16_t port = metrics_port();
  const std::string metrics = flags().at("--metrics");
  CHECK(metrics.substr(metrics.rfind(':') + 1) == std::to_string(port));
  for (const char* probe : {"readinessProbe", "livenessProbe"}) {
    INFO(probe);
    CHECK(container()[probe]["httpGet"]["path"] == "/healthz");
    CHECK(container()[probe]["httpGet"]["port"] == "metrics");
  }
  const Json& annotations = only("DaemonSet")["spec"]["template"]["metadata"]["annotations"];
  CHECK(annotations["prometheus.io/scrape"] == "true");
  CHECK(annotations["prometheus.io/port"] == std::to_string(port));
  CHECK(annotations["prometheus.io/path"] == "/metrics");
  const Json& monitor = only("PodMonitor")["spec"];
  CHECK(labels_select(monitor["selector"]["matchLabels"],
                      only("DaemonSet")["spec"]["template"]["metadata"]["labels"]));
  CHECK(monitor["podMetricsEndpoints"].at(0)["port"] == "metrics");
  CHECK(monitor["podMetricsEndpoints"].at(0)["path"] == "/metrics");
}

TEST_CASE("kubernetes manifests: the policy and CA flags name files in the mounted ConfigMap and Secret" *
          doctest::timeout(60)) {
  const std::map<std::string, std::string> args = flags();
  // Every mount has its volume.
  const Json& mounts = container()["volumeMounts"];
  for (size_t i = 0; i < mounts.size(); ++i) volume(mounts.at(i)["name"].str());

  // The policy: the ConfigMap's key inside its directory. A subPath mount would never see an update.
  const Json& policy_volume = volume("policy");
  CHECK(policy_volume["configMap"]["name"] == only("ConfigMap")["metadata"]["name"].str());
  CHECK_FALSE(mount("policy").has("subPath"));
  CHECK(mount("policy")["readOnly"].boolean());
  CHECK(args.at("--policy") == mount("policy")["mountPath"].str() + "/policy.yaml");
  CHECK(only("ConfigMap")["data"].has("policy.yaml"));

  // The CA: a kubernetes.io/tls Secret's two keys, the private key readable by its owner only.
  const Json& ca_volume = volume("ca");
  CHECK(ca_volume["secret"]["secretName"] == "egressd-ca");
  CHECK(ca_volume["secret"]["defaultMode"].integer() == 0400);
  CHECK(mount("ca")["readOnly"].boolean());
  CHECK(args.at("--ca-cert") == mount("ca")["mountPath"].str() + "/tls.crt");
  CHECK(args.at("--ca-key") == mount("ca")["mountPath"].str() + "/tls.key");
  // README.md says how to create that Secret.
  CHECK(read_file(kManifestDir + "/README.md").find("create secret tls egressd-ca") != std::string::npos);
}

// A volume's files as the kubelet writes them: DIR/..VERSION/KEY, DIR/..data -> ..VERSION, and
// DIR/KEY -> ..data/KEY. A later version is swapped in by renaming a new ..data symlink over the old one.
class KubeletVolume {
 public:
  explicit KubeletVolume(std::string dir) : dir_(std::move(dir)) {
    REQUIRE(run({"mkdir", "-p", dir_}).exit_code == 0);
  }

  void write(const std::map<std::string, std::string>& files, mode_t mode) {
    const std::string version = "..2026_01_01_00_00_0" + std::to_string(++versions_) + ".000000001";
    REQUIRE(::mkdir((dir_ + "/" + version).c_str(), 0755) == 0);
    for (const auto& [name, text] : files) {
      write_file(dir_ + "/" + version + "/" + name, text);
      REQUIRE(::chmod((dir_ + "/" + version + "/" + name).c_str(), mode) == 0);
    }
    REQUIRE(::symlink(version.c_str(), (dir_ + "/..data_tmp").c_str()) == 0);
    REQUIRE(::rename((dir_ + "/..data_tmp").c_str(), (dir_ + "/..data").c_str()) == 0);
    for (const auto& [name, text] : files) {
      const std::string link = dir_ + "/" + name;
      if (!file_exists(link)) REQUIRE(::symlink(("..data/" + name).c_str(), link.c_str()) == 0);
    }
  }

 private:
  std::string dir_;
  int versions_ = 0;
};

// Complete lines read so far from a non-blocking pipe.
class PipeReader {
 public:
  explicit PipeReader(int fd) : fd_(fd) {}
  std::vector<std::string> lines() {
    char buffer[4096];
    ssize_t n;
    while ((n = ::read(fd_.get(), buffer, sizeof buffer)) > 0) text_.append(buffer, static_cast<size_t>(n));
    std::vector<std::string> out;
    for (size_t start = 0, end; (end = text_.find('\n', start)) != std::string::npos; start = end + 1) {
      out.push_back(text_.substr(start, end - start));
    }
    return out;
  }

 private:
  UniqueFd fd_;
  std::string text_;
};

TEST_CASE(
    "kubernetes manifests: the container's command line runs, serves /healthz, denies onto stdout and "
    "reloads the ConfigMap" *
    doctest::timeout(90)) {
  const TempDir root;  // the container's filesystem, for the paths the mounts provide
  KubeletVolume policy_volume(root.path() + mount("policy")["mountPath"].str());
  const std::string policy = only("ConfigMap")["data"]["policy.yaml"].str();
  policy_volume.write({{"policy.yaml", policy}}, 0644);
  const RunResult ca = run({egressd_binary(), "ca", "init", "--out", root.file("generated-ca")});
  REQUIRE(ca.exit_code == 0);
  KubeletVolume(root.path() + mount("ca")["mountPath"].str())
      .write({{"tls.crt", read_file(root.file("generated-ca/ca.pem"))},
              {"tls.key", read_file(root.file("generated-ca/ca-key.pem"))}},
             static_cast<mode_t>(volume("ca")["secret"]["defaultMode"].integer()));

  // The command line as the kubelet starts it: $(HOST_IP) from the pod's env (status.hostIP; here
  // loopback), paths into the mounts. Only what a test must change changes: ports become 0 (no fixed
  // ports in tests), and a ready file says which one egressd picked.
  const Json& env = container()["env"];
  REQUIRE(env.size() == 1);
  CHECK(env.at(0)["name"] == "HOST_IP");
  CHECK(env.at(0)["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP");
  std::vector<std::string> argv{egressd_binary()};
  for (std::string arg : strings(container()["args"])) {
    if (const size_t at = arg.find("$(HOST_IP)"); at != std::string::npos) arg.replace(at, 10, "127.0.0.1");
    INFO("argument ", arg);
    CHECK(arg.find("$(") == std::string::npos);
    for (const char* flag : {"--listen=", "--metrics="}) {
      if (arg.starts_with(flag)) arg = arg.substr(0, arg.rfind(':') + 1) + "0";
    }
    for (const char* flag : {"--policy=", "--ca-cert=", "--ca-key="}) {
      if (arg.starts_with(flag)) arg = flag + root.path() + arg.substr(std::string_view(flag).size());
    }
    argv.push_back(arg);
  }
  argv.push_back("--ready-file=" + root.file("ready"));

  // stdout is a pipe, as a container runtime gives it; egressd opens /dev/stdout, i.e. that pipe.
  int ends[2];
  REQUIRE(::pipe2(ends, O_CLOEXEC | O_NONBLOCK) == 0);
  PipeReader stdout_pipe(ends[0]);
  UniqueFd write_end(ends[1]);
  Child egressd(argv, {.stdout_path = "/proc/self/fd/" + std::to_string(write_end.get()),
                       .stderr_path = root.file("console.log")});
  write_end.reset();
  INFO(read_file(root.file("console.log")));
  REQUIRE(wait_for([&] { return file_exists(root.file("ready")) || !egressd.running(); }, 10s));
  REQUIRE(egressd.running());
  std::string address = read_file(root.file("ready"));
  address.erase(address.find_last_not_of('\n') + 1);

  // What the probes and Prometheus ask the --metrics listener (egressd logs where it is).
  const std::string console = read_file(root.file("console.log"));
  const std::string marker = "metrics on http://";
  const size_t metrics_at = console.find(marker);
  REQUIRE(metrics_at != std::string::npos);
  const size_t metrics_start = metrics_at + marker.size();
  const std::string metrics = console.substr(metrics_start, console.find('/', metrics_start) - metrics_start);
  for (const std::string& path :
       {container()["readinessProbe"]["httpGet"]["path"].str(),
        only("DaemonSet")["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"].str()}) {
    INFO("GET ", metrics, path);
    CHECK(run({curl(), "-q", "-sS", "--noproxy", "*", "-o", "/dev/null", "-w", "%{http_code}",
               "http://" + metrics + path})
              .out == "200");
  }

  const RunResult denied = run({curl(), "-q", "-sS", "-p", "--proxy", "http://" + address, "-o", "/dev/null",
                                "-w", "%{http_connect}", "https://example.com/"});
  CHECK(denied.out == "403");
  REQUIRE(wait_for([&] { return !stdout_pipe.lines().empty(); }, 5s));
  const std::vector<std::string> lines = stdout_pipe.lines();
  REQUIRE(lines.size() == 1);
  const Json line = Json::parse(lines[0]);
  CHECK(line["event"] == "deny");
  CHECK(line["binary"] == curl());
  CHECK(line["host"] == "example.com");

  // A ConfigMap update, as the kubelet applies it: reloaded, and logged with the new hash.
  policy_volume.write({{"policy.yaml", policy + "# updated\n"}}, 0644);
  CHECK(wait_for(
      [&] { return read_file(root.file("console.log")).find("policy reloaded: hash=") != std::string::npos; },
      10s));
  egressd.signal(SIGTERM);
  CHECK(egressd.wait(10s) == 0);
}

}  // namespace
}  // namespace egressd::test::e2e
