// Describes this host for registration: hostname, kernel, CPUs, memory and every interface with
// its MAC and addresses (the server's AutoTagging matches records to hosts by these addresses).
#pragma once

#include <string>

#include "sonde/agent/v1/records.pb.h"

namespace sonde::agent {

// Reads the current host. `hostname` overrides the system name when not empty.
v1::HostInfo ReadHostInfo(const std::string& hostname);

}  // namespace sonde::agent
