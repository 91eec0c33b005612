// JSON views of a published snapshot: the /status document and the small bodies of the health
// checks. Field names are the API's contract (docs/http-api.md); `pgfailover status` reads them.
//
// Deliberately not here: routing and status codes (router.cc), and anything secret: the snapshot
// holds no credentials, and these views copy only the fields listed in the docs, never a whole
// config, so a password cannot leak through a new field by accident.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "common/time.h"
#include "core/snapshot.h"
#include "http/health_checks.h"

namespace pgfailover::http {

// Insertion-ordered so the documents read in the order the docs describe them.
using Json = nlohmann::ordered_json;

// The /status document.
Json statusJson(const core::Snapshot& snapshot);

// The body of a role check: what was checked, the answer, why, and the node's vitals.
Json checkJson(const core::Snapshot& snapshot, std::string_view check, const CheckResult& result);

// "2024-05-01T12:34:56.789Z".
std::string formatIso8601(WallTime time);

// Serializes without throwing: bytes that are not UTF-8 (a libpq message in a Latin-1 locale)
// are replaced instead of aborting the response.
std::string dumpJson(const Json& json, int indent = -1);

}  // namespace pgfailover::http
