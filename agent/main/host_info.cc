// Host description from getifaddrs(3), uname(2) and sysinfo(2).
#include "agent/main/host_info.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <fstream>
#include <map>

#include <fmt/format.h>

namespace sonde::agent {

namespace {

int PrefixLength(const sockaddr* mask) {
  if (!mask) return 0;
  const uint8_t* b = nullptr;
  size_t n = 0;
  if (mask->sa_family == AF_INET) {
    b = reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in*>(mask)->sin_addr);
    n = 4;
  } else if (mask->sa_family == AF_INET6) {
    b = reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in6*>(mask)->sin6_addr);
    n = 16;
  }
  int bits = 0;
  for (size_t i = 0; i < n; ++i) bits += __builtin_popcount(b[i]);
  return bits;
}

}  // namespace

v1::HostInfo ReadHostInfo(const std::string& hostname) {
  v1::HostInfo host;
  if (hostname.empty()) {
    char buf[256] = {0};
    gethostname(buf, sizeof(buf) - 1);
    host.set_hostname(buf);
  } else {
    host.set_hostname(hostname);
  }
  utsname u{};
  if (uname(&u) == 0) {
    host.set_os(u.sysname);
    host.set_kernel(u.release);
  }
  host.set_cpus(static_cast<uint32_t>(sysconf(_SC_NPROCESSORS_ONLN)));
  struct sysinfo si {};
  if (sysinfo(&si) == 0) host.set_memory_bytes(uint64_t{si.totalram} * si.mem_unit);
  std::ifstream boot("/proc/sys/kernel/random/boot_id");
  std::string boot_id;
  std::getline(boot, boot_id);
  host.set_boot_id(boot_id);

  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return host;
  std::map<std::string, v1::Interface> by_name;
  for (ifaddrs* a = list; a; a = a->ifa_next) {
    if (!a->ifa_name || !a->ifa_addr) continue;
    v1::Interface& iface = by_name[a->ifa_name];
    iface.set_name(a->ifa_name);
    iface.set_ifindex(if_nametoindex(a->ifa_name));
    char text[INET6_ADDRSTRLEN] = {0};
    switch (a->ifa_addr->sa_family) {
      case AF_PACKET: {
        const auto* ll = reinterpret_cast<const sockaddr_ll*>(a->ifa_addr);
        if (ll->sll_halen == 6) {
          const uint8_t* m = ll->sll_addr;
          iface.set_mac(fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3],
                                    m[4], m[5]));
        }
        break;
      }
      case AF_INET:
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(a->ifa_addr)->sin_addr, text, sizeof(text));
        iface.add_ips(fmt::format("{}/{}", text, PrefixLength(a->ifa_netmask)));
        break;
      case AF_INET6:
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(a->ifa_addr)->sin6_addr, text, sizeof(text));
        iface.add_ips(fmt::format("{}/{}", text, PrefixLength(a->ifa_netmask)));
        break;
      default:
        break;
    }
  }
  freeifaddrs(list);
  for (auto& [_, iface] : by_name) *host.add_interfaces() = std::move(iface);
  return host;
}

}  // namespace sonde::agent
