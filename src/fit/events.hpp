#pragma once
// PETSc log stages and events of the fit, so `cohortnet fit ... -log_view` reports where the time
// goes: the regression start, RNN steps (J r and the Euler update), learning steps (P z, gains,
// updates), the all-gathers of r and k, checkpoints and the output with its decomposition.
#include <petscsys.h>

namespace cohortnet::fit {

struct Events {
  PetscLogStage start = 0, train = 0, output = 0;
  PetscLogEvent rnn_step = 0, learn_step = 0, gather = 0, checkpoint = 0, write = 0;
};

// Registered once per process (after PetscInitialize).
inline const Events& events() {
  static const Events e = [] {
    Events v;
    PetscClassId cid = 0;
    PetscClassIdRegister("cohortnet fit", &cid);
    PetscLogStageRegister("Fit: start", &v.start);
    PetscLogStageRegister("Fit: training", &v.train);
    PetscLogStageRegister("Fit: output", &v.output);
    PetscLogEventRegister("RnnStep", cid, &v.rnn_step);
    PetscLogEventRegister("LearnStep", cid, &v.learn_step);
    PetscLogEventRegister("GatherRates", cid, &v.gather);
    PetscLogEventRegister("Checkpoint", cid, &v.checkpoint);
    PetscLogEventRegister("WriteResult", cid, &v.write);
    return v;
  }();
  return e;
}

// Scope of a stage / an event (no-ops unless PETSc logging is on).
class StageScope {
 public:
  explicit StageScope(PetscLogStage s) { PetscLogStagePush(s); }
  ~StageScope() { PetscLogStagePop(); }
  StageScope(const StageScope&) = delete;
  StageScope& operator=(const StageScope&) = delete;
};
class EventScope {
 public:
  explicit EventScope(PetscLogEvent e) : e_(e) { PetscLogEventBegin(e_, 0, 0, 0, 0); }
  ~EventScope() { PetscLogEventEnd(e_, 0, 0, 0, 0); }
  EventScope(const EventScope&) = delete;
  EventScope& operator=(const EventScope&) = delete;

 private:
  PetscLogEvent e_;
};

}  // namespace cohortnet::fit
