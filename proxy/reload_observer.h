// ReloadObserver: told of each policy reload, on the loop thread, when it starts and how it ended (what
// systemd's RELOADING=1 and READY=1 report). Server does not own it.
#pragma once

#include "policy/policy.h"
#include "policy/store.h"

namespace egressd::proxy {

class ReloadObserver {
 public:
  virtual ~ReloadObserver() = default;
  virtual void on_reload_started() = 0;
  // `in_force`: the snapshot now used for new connections (the old one when `result` is not Applied).
  virtual void on_reload_finished(const policy::ReloadResult& result, const policy::Policy& in_force) = 0;
};

}  // namespace egressd::proxy
