// SmartEncoding dictionary with the claim protocol described in tag_dictionary.h.
#include "server/enrich/tag_dictionary.h"

#include <algorithm>
#include <map>
#include <thread>

namespace sonde::server::enrich {
namespace {

uint64_t Fnv1a(uint64_t h, std::string_view s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// splitmix64 finalizer: spreads FNV's weak low bits.
uint64_t Mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

uint64_t NowMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

TagDictionary::TagDictionary(TagStore* store, TagDictionaryOptions options, metrics::Registry* registry)
    : store_(store), options_(options) {
  options_.id_bits = std::clamp(options_.id_bits, 2, 32);
  if (registry != nullptr) {
    allocated_ = registry->GetCounter("sonde_server_tag_ids_allocated_total",
                                      "SmartEncoding ids this server allocated");
    collisions_ = registry->GetCounter("sonde_server_tag_id_collisions_total",
                                       "hash probes lost to another value");
    slow_claims_ = registry->GetCounter("sonde_server_tag_slow_claims_total",
                                        "claims released because the insert exceeded the settle time");
  }
}

uint32_t TagDictionary::ProbeId(TagDimension d, std::string_view value, int probe) const {
  uint64_t h = 14695981039346656037ull;
  h = Fnv1a(h, InfoOf(d).name);
  h = Fnv1a(h, std::string_view("\0", 1));
  h = Fnv1a(h, value);
  h = Mix(h + static_cast<uint64_t>(probe) * 0x9e3779b97f4a7c15ull);
  const uint64_t space = (uint64_t{1} << options_.id_bits) - 1;  // ids 1..space; 0 = no tag
  return static_cast<uint32_t>(1 + h % space);
}

void TagDictionary::Adopt(TagDimension d, const std::vector<TagClaim>& claims) {
  std::map<uint32_t, const std::string*> winner;
  for (const auto& c : claims) {
    auto [it, inserted] = winner.emplace(c.id, &c.value);
    if (!inserted && c.value < *it->second) it->second = &c.value;
  }
  std::lock_guard lock(mu_);
  Cache& cache = caches_[static_cast<size_t>(d)];
  std::map<std::string_view, uint32_t> was;  // cached values given another id here: their id before
  for (const auto& [id, value] : winner) {
    cache.by_id[id] = *value;
    auto [it, inserted] = cache.by_value.emplace(*value, id);
    if (!inserted && it->second != id) {
      was.emplace(*value, it->second);
      it->second = id;
    }
  }
  // A value winning two ids is reassigned back and forth above; only a net change counts.
  for (const auto& [value, id] : was) {
    if (cache.by_value.find(std::string(value))->second != id) {
      generation_.fetch_add(1, std::memory_order_acq_rel);
      break;
    }
  }
}

Status TagDictionary::Load() {
  for (const auto& info : AllTagDictionaries()) {
    SONDE_ASSIGN_OR_RETURN(auto claims, store_->LiveClaims(info.dimension, {}));
    Adopt(info.dimension, claims);
  }
  return Status::Ok();
}

std::optional<uint32_t> TagDictionary::Find(TagDimension d, std::string_view value) const {
  if (value.empty()) return 0;
  std::lock_guard lock(mu_);
  const Cache& cache = caches_[static_cast<size_t>(d)];
  auto it = cache.by_value.find(std::string(value));
  if (it == cache.by_value.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> TagDictionary::Decode(TagDimension d, uint32_t id) const {
  if (id == 0) return std::string();
  std::lock_guard lock(mu_);
  const Cache& cache = caches_[static_cast<size_t>(d)];
  auto it = cache.by_id.find(id);
  if (it == cache.by_id.end()) return std::nullopt;
  return it->second;
}

size_t TagDictionary::size(TagDimension d) const {
  std::lock_guard lock(mu_);
  return caches_[static_cast<size_t>(d)].by_value.size();
}

StatusOr<uint32_t> TagDictionary::Encode(TagDimension d, std::string_view value) {
  std::string v(value);
  SONDE_ASSIGN_OR_RETURN(auto ids, Encode(d, std::span<const std::string>(&v, 1)));
  return ids[0];
}

StatusOr<std::vector<uint32_t>> TagDictionary::Encode(TagDimension d, std::span<const std::string> values) {
  std::vector<uint32_t> out(values.size(), 0);
  std::vector<std::string> missing;
  for (size_t i = 0; i < values.size(); ++i) {
    if (auto id = Find(d, values[i])) {
      out[i] = *id;
    } else {
      missing.push_back(values[i]);
    }
  }
  if (missing.empty()) return out;
  std::sort(missing.begin(), missing.end());
  missing.erase(std::unique(missing.begin(), missing.end()), missing.end());
  SONDE_RETURN_IF_ERROR(Allocate(d, std::move(missing)));
  for (size_t i = 0; i < values.size(); ++i) {
    if (out[i] != 0 || values[i].empty()) continue;
    auto id = Find(d, values[i]);
    if (!id) return InternalError("tag id allocation left a value without an id");
    out[i] = *id;
  }
  return out;
}

Status TagDictionary::Allocate(TagDimension d, std::vector<std::string> values) {
  std::lock_guard alloc_lock(alloc_mu_);
  struct Pending {
    std::string value;
    int probe = 0;
  };
  std::vector<Pending> pending;
  for (auto& v : values) {
    if (!Find(d, v)) pending.push_back({std::move(v), 0});  // another caller may have won the lock first
  }
  // Each round settles every pending value or advances its probe; bounded by max_probes plus a
  // few rounds of slow-claim retries.
  for (int round = 0; !pending.empty(); ++round) {
    if (round > options_.max_probes + 8) {
      return ResourceExhaustedError("tag id allocation did not converge for " +
                                    std::string(InfoOf(d).dictionary));
    }
    std::vector<uint32_t> ids;
    for (const auto& p : pending) {
      if (p.probe >= options_.max_probes) {
        return ResourceExhaustedError("no free id for '" + p.value + "' in " +
                                      std::string(InfoOf(d).dictionary) + " after " +
                                      std::to_string(p.probe) + " probes");
      }
      ids.push_back(ProbeId(d, p.value, p.probe));
    }
    // 1. Pre-read: an id already owned by another value moves us on; one already owned by
    //    our value (claimed by another server) is adopted.
    const auto t0 = std::chrono::steady_clock::now();
    SONDE_ASSIGN_OR_RETURN(auto before, store_->LiveClaims(d, ids));
    Adopt(d, before);
    std::vector<Pending> claiming;
    std::vector<TagClaim> claims;
    for (size_t i = 0; i < pending.size(); ++i) {
      auto& p = pending[i];
      if (Find(d, p.value)) continue;
      const bool taken = std::any_of(before.begin(), before.end(),
                                     [&](const TagClaim& c) { return c.id == ids[i]; });
      if (taken) {
        if (collisions_) collisions_->Inc();
        ++p.probe;
        claiming.push_back(std::move(p));
        continue;
      }
      claims.push_back({ids[i], p.value, NowMs(), false});
      claiming.push_back(std::move(p));
    }
    pending.clear();
    if (claims.empty()) {
      pending = std::move(claiming);
      continue;
    }
    // 2. Claim. 3. Wait so that any concurrent claim that missed ours in its pre-read is
    //    visible to our post-read (and ours to theirs).
    SONDE_RETURN_IF_ERROR(store_->InsertClaims(d, claims));
    const auto t1 = std::chrono::steady_clock::now();
    if (t1 - t0 > options_.settle) {
      // Too slow for the protocol's bound: withdraw and try the same probes again.
      if (slow_claims_) slow_claims_->Inc();
      for (auto& c : claims) c.released = true;
      SONDE_RETURN_IF_ERROR(store_->InsertClaims(d, claims));
      for (auto& p : claiming) {
        if (!Find(d, p.value)) pending.push_back(std::move(p));
      }
      continue;
    }
    std::this_thread::sleep_for(options_.settle);
    // 4. Post-read: the smallest live value per id wins; losers release and probe on.
    std::vector<uint32_t> claimed_ids;
    for (const auto& c : claims) claimed_ids.push_back(c.id);
    SONDE_ASSIGN_OR_RETURN(auto after, store_->LiveClaims(d, claimed_ids));
    Adopt(d, after);
    std::vector<TagClaim> releases;
    for (const auto& c : claims) {
      auto id = Find(d, c.value);
      if (id && *id == c.id) {
        if (allocated_) allocated_->Inc();
        continue;
      }
      if (collisions_) collisions_->Inc();
      releases.push_back({c.id, c.value, NowMs(), true});
    }
    SONDE_RETURN_IF_ERROR(store_->InsertClaims(d, releases));
    for (auto& p : claiming) {
      if (Find(d, p.value)) continue;
      // Lost (or skipped) this probe: try the next one.
      if (std::any_of(releases.begin(), releases.end(),
                      [&](const TagClaim& r) { return r.value == p.value; })) {
        ++p.probe;
      }
      pending.push_back(std::move(p));
    }
  }
  return Status::Ok();
}

}  // namespace sonde::server::enrich
