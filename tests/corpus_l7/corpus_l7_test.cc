// Acceptance over the shared public corpus (../shared/corpus/{http,http2,dns,tls}), every capture
// run through the real agent pipeline (pcap source -> flow tracker -> L7 analyzer):
//  - field for field against the expected outputs the source projects ship (DeepFlow, Packetbeat,
//    Arkime, nDPI): requests found, method, resource, status, code; floor in agreement.txt;
//  - request/response/method counts against the tshark counts in MANIFEST.md; floor in
//    baseline.txt.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "agent/protocols/common/registry.h"
#include "tests/corpus_l7/corpus_compare.h"

namespace sonde::agent::protocols {
namespace {

namespace fs = std::filesystem;

struct Expected {
  std::string folder, file;
  int requests = 0, responses = 0;
  std::map<std::string, int> methods;  // HTTP only
};

std::string Trim(std::string s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '`')) s.erase(s.begin());
  while (!s.empty() && (s.back() == ' ' || s.back() == '`')) s.pop_back();
  return s;
}

// Rows "| `file` | proto | source | license | size | packets | convs | N / M; ... | notes |".
std::vector<Expected> ParseManifest(const std::string& path) {
  std::ifstream in(path);
  std::vector<Expected> out;
  std::string line, section;
  while (std::getline(in, line)) {
    if (line.starts_with("## ")) {
      size_t a = line.find('`');
      size_t b = line.find('/', a);
      section = a == std::string::npos || b == std::string::npos ? "" : line.substr(a + 1, b - a - 1);
      continue;
    }
    if (!line.starts_with("| `")) continue;
    std::vector<std::string> cols;
    std::stringstream ss(line.substr(1));
    std::string c;
    while (std::getline(ss, c, '|')) cols.push_back(Trim(c));
    if (cols.size() < 8) continue;
    Expected e;
    e.folder = section;
    e.file = cols[0];
    const std::string& counts = cols[7];
    if (std::sscanf(counts.c_str(), "%d / %d", &e.requests, &e.responses) != 2) continue;
    size_t semi = counts.find(';');
    if (section == "http" && semi != std::string::npos) {
      std::string rest = counts.substr(semi + 1);
      rest = rest.substr(0, rest.find('('));
      std::stringstream ms(rest);
      std::string item;
      while (std::getline(ms, item, ',')) {
        char method[32] = {};
        int n = 0;
        if (std::sscanf(item.c_str(), " %31s %d", method, &n) == 2) e.methods[method] = n;
      }
    }
    out.push_back(std::move(e));
  }
  return out;
}

bool InFamily(const std::string& folder, common::v1::L7Protocol p) {
  if (folder == "http") return p == common::v1::L7_PROTOCOL_HTTP1;
  if (folder == "http2") return p == common::v1::L7_PROTOCOL_HTTP2 || p == common::v1::L7_PROTOCOL_GRPC;
  if (folder == "dns") return p == common::v1::L7_PROTOCOL_DNS;
  if (folder == "tls") return p == common::v1::L7_PROTOCOL_TLS;
  return false;
}

struct Totals {
  int files = 0, expected_req = 0, expected_resp = 0, found = 0, matched_req = 0, matched_resp = 0;
  int expected_methods = 0, matched_methods = 0;
};

TEST(CorpusL7Test, FieldForFieldAgainstSourceProjects) {
  const char* src = std::getenv("SONDE_SOURCE_DIR");
  const fs::path root = fs::path(src ? src : ".");
  const fs::path corpus = root / ".." / "shared" / "corpus";
  if (!fs::exists(corpus / "MANIFEST.md")) GTEST_SKIP() << "no corpus at " << corpus;
  auto results = corpus::RunAcceptance(corpus, {"http", "http2", "dns", "tls"});
  corpus::CheckBaseline(root / "tests" / "corpus_l7" / "agreement.txt", results);
}

TEST(CorpusL7Test, AgreementWithReferenceCounts) {
  const char* src = std::getenv("SONDE_SOURCE_DIR");
  const fs::path corpus = fs::path(src ? src : ".") / ".." / "shared" / "corpus";
  if (!fs::exists(corpus / "MANIFEST.md")) GTEST_SKIP() << "no corpus at " << corpus;
  std::map<std::string, Totals> totals;
  for (const Expected& e : ParseManifest((corpus / "MANIFEST.md").string())) {
    if (e.folder != "http" && e.folder != "http2" && e.folder != "dns" && e.folder != "tls") continue;
    const fs::path pcap = corpus / e.folder / e.file;
    if (!fs::exists(pcap)) continue;
    auto run = corpus::RunAgentPipeline(pcap);
    ASSERT_TRUE(run.ok()) << pcap << ": " << run.status().ToString();
    const std::vector<v1::L7RequestLog>& recs = *run;
    int found = 0, answered = 0;
    std::map<std::string, int> methods;
    for (const auto& r : recs) {
      if (!InFamily(e.folder, r.l7_protocol())) continue;
      ++found;
      if (r.response_status() != common::v1::RESPONSE_STATUS_TIMEOUT) ++answered;
      ++methods[r.request_type()];
    }
    Totals& t = totals[e.folder];
    ++t.files;
    t.expected_req += e.requests;
    t.expected_resp += e.responses;
    t.found += found;
    t.matched_req += std::min(found, e.requests);
    t.matched_resp += std::min(answered, e.responses);
    for (const auto& [m, n] : e.methods) {
      t.expected_methods += n;
      t.matched_methods += std::min(methods[m], n);
    }
    std::printf("  %-6s %-58s req %3d/%-3d resp %3d/%-3d\n", e.folder.c_str(), e.file.c_str(),
                found, e.requests, answered, e.responses);
  }
  std::map<std::string, double> baseline;
  std::ifstream bl(fs::path(src ? src : ".") / "tests" / "corpus_l7" / "baseline.txt");
  std::string name;
  double value = 0;
  while (bl >> name >> value) baseline[name] = value;
  for (const auto& [folder, t] : totals) {
    const double req = t.expected_req ? double(t.matched_req) / t.expected_req : 1.0;
    const double resp = t.expected_resp ? double(t.matched_resp) / t.expected_resp : 1.0;
    const double meth = t.expected_methods ? double(t.matched_methods) / t.expected_methods : 1.0;
    std::printf("%-6s files=%d requests found=%d expected=%d agreement: requests=%.3f "
                "responses=%.3f methods=%.3f\n",
                folder.c_str(), t.files, t.found, t.expected_req, req, resp, meth);
    EXPECT_GE(req + 1e-9, baseline[folder + ".requests"]) << folder;
    EXPECT_GE(resp + 1e-9, baseline[folder + ".responses"]) << folder;
    EXPECT_GE(meth + 1e-9, baseline[folder + ".methods"]) << folder;
  }
}

}  // namespace
}  // namespace sonde::agent::protocols
