// `cohortnet ingest`: options -> ingest::Options -> run_ingest (docs/ingest.md).
#include "ingest/command.hpp"

#include <sstream>

#include "core/error.hpp"
#include "core/parallel.hpp"
#include "ingest/ingest.hpp"

namespace cohortnet {

namespace {

po::typed_value<double>* dval(double v) {
  std::ostringstream os;
  os << v;
  return po::value<double>()->default_value(v, os.str());
}

void add_options(po::options_description& d) {
  const ingest::Options o;
  d.add_options()
      ("format", po::value<std::string>(), "input format: nwb, npy or h5-array (required)")
      ("input", po::value<std::vector<std::string>>()->composing(),
       "input file (repeat for several): one animal per NWB or .npy file; h5-array: one per subject")
      ("out", po::value<std::string>(), "cohort folder to write (created if missing; required)")
      ("name", po::value<std::string>(), "cohort name in cohort.ini (default: the folder's name)")
      ("region-map", po::value<std::string>(),
       "CSV (fine,region) or INI (fine = region) file mapping fine atlas labels to study regions; "
       "'X*' matches by prefix; units in no mapped region are dropped and counted")
      ("normalise", po::value<std::string>()->default_value(o.normalise),
       "zscore (per unit), dff-as-given (NWB: DfOverF series only), max (divide by max |x|) or none")
      ("trials", po::value<std::string>()->default_value(o.trials),
       "trials (NWB /intervals/trials, 3-D .npy): concatenate (/trial_starts) or average per condition")
      ("condition-column", po::value<std::string>(), "NWB: column of /intervals/trials naming each trial's condition")
      ("trial-conditions", po::value<std::string>(), "npy 3-D: text file with one condition label per trial")
      ("species", po::value<std::string>()->default_value(""), "species recorded in the animal files (e.g. mouse)")
      ("atlas", po::value<std::string>()->default_value(""), "atlas of the region names (e.g. allen-ccf)")
      ("nwb-data", po::value<std::string>()->default_value(o.nwb_data),
       "NWB: calcium (RoiResponseSeries), spikes (Units) or auto (whichever the file has)")
      ("series", po::value<std::vector<std::string>>()->composing(),
       "NWB calcium: RoiResponseSeries to use, by name or path (repeat; default: all under DfOverF, else Fluorescence)")
      ("region-column", po::value<std::string>(),
       "NWB: per-ROI (PlaneSegmentation) or per-unit (units) column holding the region; NAME:FIELD for a "
       "compound column (default: a 'location' column, else the imaging plane / electrodes location)")
      ("bin-width", dval(o.bin_width), "NWB spikes: bin width, s (= the sample interval)")
      ("smooth-kernel", po::value<std::string>()->default_value(o.smooth_kernel), "NWB spikes: gaussian or none")
      ("smooth-width", dval(o.smooth_width), "NWB spikes: sd of the Gaussian smoothing kernel, s")
      ("labels", po::value<std::vector<std::string>>()->composing(),
       "npy/h5-array: region label of every unit: text (one per line), CSV (last column) or a 1-D string .npy; "
       "once for all inputs, or once per --input (same order). An existing cohort in --out is added to")
      ("layout", po::value<std::string>()->default_value(o.layout),
       "npy/h5-array: units-by-samples or samples-by-units (the last two dimensions)")
      ("sample-interval", po::value<double>(), "npy/h5-array: seconds between samples")
      ("animal-id", po::value<std::string>(), "npy: animal id of the single input (default: its file name)")
      ("dataset", po::value<std::string>(), "h5-array: dataset [subjects x units x time]")
      ("labels-dataset", po::value<std::string>(),
       "h5-array: dataset of unit labels in the same file (default: region_names next to --dataset)")
      ("ids-dataset", po::value<std::string>(),
       "h5-array: dataset of subject ids (default: subject_ids next to --dataset, else FILE-sK)");
}

template <class T>
void take(const po::variables_map& vm, const std::string& key, T& field) {
  if (vm.count(key)) field = vm[key].as<T>();
}

int run(const po::variables_map& vm, MPI_Comm comm) {
  ingest::Options o;
  collective(comm, [&] {
    if (!vm.count("format")) fail("option --format is required: nwb, npy or h5-array");
    take(vm, "format", o.format);
    take(vm, "input", o.inputs);
    take(vm, "out", o.out);
    take(vm, "name", o.name);
    take(vm, "region-map", o.region_map);
    take(vm, "normalise", o.normalise);
    take(vm, "trials", o.trials);
    take(vm, "condition-column", o.condition_column);
    take(vm, "trial-conditions", o.trial_conditions);
    take(vm, "species", o.species);
    take(vm, "atlas", o.atlas);
    take(vm, "nwb-data", o.nwb_data);
    take(vm, "series", o.series);
    take(vm, "region-column", o.region_column);
    take(vm, "bin-width", o.bin_width);
    take(vm, "smooth-kernel", o.smooth_kernel);
    take(vm, "smooth-width", o.smooth_width);
    if (vm.count("labels")) {
      const auto& l = vm["labels"].as<std::vector<std::string>>();
      o.labels = l.front();
      if (l.size() > 1) o.input_labels = l;
    }
    take(vm, "layout", o.layout);
    take(vm, "sample-interval", o.sample_interval);
    if (vm.count("sample-interval") && !(o.sample_interval > 0))
      fail("option --sample-interval: must be > 0 s, got ", o.sample_interval);
    take(vm, "animal-id", o.animal_id);
    take(vm, "dataset", o.dataset);
    take(vm, "labels-dataset", o.labels_dataset);
    take(vm, "ids-dataset", o.ids_dataset);
    o.config = config_record("ingest", vm);
    ingest::validate_options(o);
  });
  ingest::run_ingest(o, comm);
  return 0;
}

}  // namespace

Command make_ingest_command() {
  Command c;
  c.name = "ingest";
  c.summary = "convert recordings (NWB, .npy, HDF5 arrays) into a cohort folder";
  c.add_options = add_options;
  c.run = run;
  return c;
}

}  // namespace cohortnet
