// nanobind bindings of the replay core. Arrays cross as nanobind ndarrays (buffer protocol or
// DLPack), so numpy arrays and CPU torch tensors both work and nothing links to libtorch.
// Every input is checked here before the core touches memory; failures raise
// rlkit.errors.BufferError.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <cstdlib>
#include <cstring>
#include <optional>

#include "replay_core.hpp"

namespace nb = nanobind;
using namespace nb::literals;
using rlkit::BufferError;
using rlkit::FieldSpec;
using rlkit::ReplayCore;

namespace {

constexpr size_t kReleaseGilBytes = 256 * 1024;  // below this the GIL round trip costs more

std::string dtype_name(uint8_t code, uint8_t bits) {
  switch (code) {
    case 0: return "int" + std::to_string(bits);
    case 1: return "uint" + std::to_string(bits);
    case 2: return "float" + std::to_string(bits);
    case 6: return "bool";
    default: return "dtype code " + std::to_string(code) + "/" + std::to_string(bits);
  }
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

FieldSpec parse_field(const std::string& name, const std::string& dtype,
                      const std::vector<int64_t>& shape) {
  // dtype is numpy's dtype.str, e.g. "<f4", "|b1".
  if (dtype.size() < 3) throw BufferError("bad dtype '" + dtype + "' for field '" + name + "'");
  char kind = dtype[1];
  int size = std::atoi(dtype.c_str() + 2);
  uint8_t code = kind == 'i' ? 0 : kind == 'u' ? 1 : kind == 'f' ? 2 : kind == 'b' ? 6 : 255;
  if (code == 255 || size <= 0 || size > 8 || dtype[0] == '>')
    throw BufferError("field '" + name + "' has unsupported dtype '" + dtype +
                      "': use a native bool, int, uint or float dtype");
  size_t bytes = static_cast<size_t>(size);
  for (int64_t d : shape) {
    if (d < 0) throw BufferError("field '" + name + "' has a negative dimension");
    if (d > 0 && bytes > SIZE_MAX / static_cast<size_t>(d))
      throw BufferError("field '" + name + "' has shape " + shape_str(shape) +
                        ": its bytes per row overflow; use a smaller shape");
    bytes *= static_cast<size_t>(d);
  }
  if (bytes == 0) throw BufferError("field '" + name + "' has an empty shape " + shape_str(shape));
  return {name, code, static_cast<uint8_t>(size * 8), shape, bytes};
}

bool c_contiguous(const nb::ndarray<nb::ro>& a) {
  int64_t expect = 1;
  for (size_t i = a.ndim(); i-- > 0;) {
    if (a.shape(i) != 1 && a.stride(i) != expect) return false;
    expect *= static_cast<int64_t>(a.shape(i));
  }
  return true;
}

bool cpu_device(int32_t type) {
  return type == nb::device::cpu::value || type == nb::device::cuda_host::value;
}

class Core {
 public:
  Core(int64_t capacity, const std::vector<std::tuple<std::string, std::string, std::vector<int64_t>>>& fields,
       bool prioritized, double alpha, int64_t n_step, double gamma, int64_t stride, bool share_obs,
       uint64_t seed) {
    if (capacity <= 0)
      throw BufferError("capacity must be > 0, got " + std::to_string(capacity));
    if (fields.empty()) throw BufferError("a replay buffer needs at least one field");
    std::vector<FieldSpec> specs;
    for (const auto& [name, dtype, shape] : fields) {
      for (const auto& s : specs)
        if (s.name == name) throw BufferError("field '" + name + "' is declared twice");
      specs.push_back(parse_field(name, dtype, shape));
      names_.push_back(nb::str(name.c_str()));
    }
    rlkit::Options opt{capacity, prioritized, alpha, n_step, gamma, stride, share_obs, seed};
    core_ = std::make_unique<ReplayCore>(std::move(specs), opt);
    np_ = nb::module_::import_("numpy");
  }

  // Returns the rows of one field's value and its data pointer; keeps any converted copy alive.
  static const uint8_t* scalar(const FieldSpec& spec, nb::handle v, uint64_t* out) {
    const bool is_float = PyFloat_CheckExact(v.ptr());
    uint8_t* p = reinterpret_cast<uint8_t*>(out);
    if (spec.code == 2) {
      double d = PyFloat_AsDouble(v.ptr());
      if (d == -1.0 && PyErr_Occurred()) throw nb::python_error();
      if (spec.bits == 64) std::memcpy(p, &d, 8);
      else if (spec.bits == 32) { float x = static_cast<float>(d); std::memcpy(p, &x, 4); }
      else return nullptr;  // float16: let numpy convert
      return p;
    }
    if (is_float)
      throw BufferError("field '" + spec.name + "' has dtype " + dtype_name(spec.code, spec.bits) +
                        " but got the float " + std::string(nb::repr(v).c_str()) +
                        ": pass an integer or bool, or declare the field as a float");
    long long x = PyLong_AsLongLong(v.ptr());
    if (x == -1 && PyErr_Occurred()) {
      PyErr_Clear();
      throw BufferError("field '" + spec.name + "': integer " + std::string(nb::repr(v).c_str()) +
                        " does not fit in " + dtype_name(spec.code, spec.bits));
    }
    if (spec.code == 6) {
      x = x != 0;
    } else if (spec.bits < 64) {
      long long hi = spec.code == 1 ? (1LL << spec.bits) - 1 : (1LL << (spec.bits - 1)) - 1;
      long long lo = spec.code == 1 ? 0 : -hi - 1;
      if (x < lo || x > hi)
        throw BufferError("field '" + spec.name + "': " + std::to_string(x) + " does not fit in " +
                          dtype_name(spec.code, spec.bits));
    } else if (spec.code == 1 && x < 0) {
      throw BufferError("field '" + spec.name + "': a negative value does not fit in uint64");
    }
    std::memcpy(p, &x, spec.bits / 8);  // little-endian: the low bytes
    return p;
  }

  const uint8_t* view(size_t f, nb::handle v, int64_t& rows, std::vector<nb::ndarray<nb::ro>>& keep,
                      std::vector<nb::object>& owned, uint64_t* scratch) {
    const FieldSpec& spec = core_->fields()[f];
    if (spec.shape.empty() && (PyFloat_CheckExact(v.ptr()) || PyLong_CheckExact(v.ptr()) ||
                               PyBool_Check(v.ptr()))) {
      rows = -1;  // a Python scalar for a scalar field: convert here, no array needed
      if (const uint8_t* p = scalar(spec, v, scratch + f)) return p;
    }
    nb::ndarray<nb::ro> a;
    if (!nb::try_cast(v, a, false)) {
      nb::object conv;
      bool objects = false;
      try {
        // numpy would turn None (or any object) into NaN when casting straight to the field's
        // dtype: read the value as it is first, and refuse arrays of Python objects
        nb::object raw = np_.attr("asarray")(v);
        objects = nb::cast<std::string>(raw.attr("dtype").attr("kind")) == "O";
        if (!objects)
          conv = np_.attr("asarray")(raw, "dtype"_a = dtype_name(spec.code, spec.bits).c_str());
      } catch (nb::python_error& e) {
        throw BufferError("field '" + spec.name + "': cannot read the value as an array (" +
                          e.what() + "); pass a numpy array or a CPU torch tensor");
      }
      if (objects)
        throw BufferError("field '" + spec.name +
                          "' got Python objects (dtype object, e.g. None or mixed types): pass "
                          "numbers, as a numpy array of dtype " + dtype_name(spec.code, spec.bits));
      owned.push_back(conv);
      if (!nb::try_cast(conv, a, false))
        throw BufferError("field '" + spec.name + "': cannot read the value as an array");
    }
    if (!cpu_device(a.device_type()))
      throw BufferError("field '" + spec.name + "' is not in CPU memory: move it with .cpu() first");
    if (a.dtype().code != spec.code || a.dtype().bits != spec.bits || a.dtype().lanes != 1)
      throw BufferError("field '" + spec.name + "' has dtype " +
                        dtype_name(a.dtype().code, a.dtype().bits) + ", expected " +
                        dtype_name(spec.code, spec.bits) +
                        ": cast it (numpy .astype, torch .to) or declare the field with that dtype");
    const size_t nd = spec.shape.size();
    std::vector<int64_t> got(a.ndim());
    for (size_t i = 0; i < a.ndim(); ++i) got[i] = static_cast<int64_t>(a.shape(i));
    bool single = got == spec.shape;
    bool batch = got.size() == nd + 1 && std::equal(spec.shape.begin(), spec.shape.end(), got.begin() + 1);
    if (!single && !batch)
      throw BufferError("field '" + spec.name + "' has shape " + shape_str(got) + ", expected " +
                        shape_str(spec.shape) + " for one transition or (batch, *" +
                        shape_str(spec.shape) + ") for a batch");
    rows = single ? -1 : got[0];
    if (!c_contiguous(a)) {
      nb::object conv = np_.attr("ascontiguousarray")(v);
      owned.push_back(conv);
      nb::ndarray<nb::ro> b;
      if (!nb::try_cast(conv, b, false) || !c_contiguous(b))
        throw BufferError("field '" + spec.name + "' could not be made contiguous");
      a = b;
    }
    keep.push_back(a);
    return static_cast<const uint8_t*>(a.data());
  }

  std::string missing_or_extra(const nb::dict& data) const {
    std::string missing, extra;
    for (size_t f = 0; f < names_.size(); ++f)
      if (!data.contains(names_[f])) missing += (missing.empty() ? "'" : ", '") + core_->fields()[f].name + "'";
    for (auto [k, v] : data) {
      bool known = false;
      for (const auto& n : names_) known = known || n.equal(k);
      if (!known) extra += (extra.empty() ? "" : ", ") + std::string(nb::repr(k).c_str());
    }
    std::string msg = "the transition's fields do not match the buffer's:";
    if (!missing.empty()) msg += " missing " + missing + ";";
    if (!extra.empty()) msg += " unexpected " + extra + ";";
    return msg + " pass exactly the declared fields";
  }

  int64_t add(nb::dict data) {
    const auto& fields = core_->fields();
    if (data.size() != fields.size()) throw BufferError(missing_or_extra(data));
    std::vector<const uint8_t*> src(fields.size());
    std::vector<nb::ndarray<nb::ro>> keep;
    std::vector<nb::object> owned;
    keep.reserve(fields.size());
    int64_t rows = -2;
    size_t bytes = 0;
    uint64_t scratch[64];
    std::vector<uint64_t> more;
    uint64_t* scalars = scratch;
    if (fields.size() > 64) {
      more.resize(fields.size());
      scalars = more.data();
    }
    for (size_t f = 0; f < fields.size(); ++f) {
      PyObject* v = PyDict_GetItemWithError(data.ptr(), names_[f].ptr());
      if (v == nullptr) {
        if (PyErr_Occurred()) throw nb::python_error();
        throw BufferError(missing_or_extra(data));
      }
      int64_t r;
      src[f] = view(f, v, r, keep, owned, scalars);
      if (rows != -2 && r != rows)
        throw BufferError("field '" + fields[f].name + "' has " +
                          (r < 0 ? std::string("one transition") : std::to_string(r) + " rows") +
                          " but '" + fields[0].name + "' has " +
                          (rows < 0 ? std::string("one transition") : std::to_string(rows) + " rows") +
                          ": every field needs the same leading batch size");
      rows = r;
      bytes += fields[f].bytes;
    }
    uint64_t n = rows < 0 ? 1 : static_cast<uint64_t>(rows);
    if (n * bytes >= kReleaseGilBytes) {
      nb::gil_scoped_release release;
      return static_cast<int64_t>(core_->add(src, n));
    }
    return static_cast<int64_t>(core_->add(src, n));
  }

  void check_n(int64_t n) const {
    uint64_t stored = core_->size();
    if (stored == 0) throw BufferError("cannot sample from an empty buffer: add transitions first");
    if (n <= 0) throw BufferError("sample size must be positive, got " + std::to_string(n));
    if (static_cast<uint64_t>(n) > stored)
      throw BufferError("cannot sample " + std::to_string(n) + " rows: only " +
                        std::to_string(stored) + " are stored");
  }

  void run_sample(int64_t n, double beta, const rlkit::SampleOut& out) {
    size_t bytes = 0;
    for (const auto& f : core_->fields()) bytes += f.bytes;
    if (static_cast<size_t>(n) * bytes >= kReleaseGilBytes) {
      nb::gil_scoped_release release;
      core_->sample(n, beta, out);
    } else {
      core_->sample(n, beta, out);
    }
  }

  nb::dict sample(int64_t n, double beta) {
    check_n(n);
    const auto& fields = core_->fields();
    const bool per = core_->options().prioritized;
    size_t total = 0;
    std::vector<size_t> offs;
    for (const auto& f : fields) {
      offs.push_back(total);
      total += (static_cast<size_t>(n) * f.bytes + 63) / 64 * 64;
    }
    size_t ids_off = total;
    total += static_cast<size_t>(n) * 8;
    size_t w_off = total;
    total += static_cast<size_t>(n) * 4 * (per ? 1 : 0);
    size_t d_off = total;
    total += static_cast<size_t>(n) * 4;
    uint8_t* block = static_cast<uint8_t*>(std::aligned_alloc(64, (total + 63) / 64 * 64));
    if (block == nullptr) throw BufferError("out of memory allocating the sample");
    nb::capsule owner(block, [](void* p) noexcept { std::free(p); });
    rlkit::SampleOut out;
    for (size_t f = 0; f < fields.size(); ++f) out.fields.push_back(block + offs[f]);
    out.ids = reinterpret_cast<int64_t*>(block + ids_off);
    out.weights = per ? reinterpret_cast<float*>(block + w_off) : nullptr;
    out.discount = reinterpret_cast<float*>(block + d_off);
    run_sample(n, beta, out);

    nb::dict result;
    std::vector<size_t> shape;
    for (size_t f = 0; f < fields.size(); ++f) {
      shape.assign(1, static_cast<size_t>(n));
      for (int64_t d : fields[f].shape) shape.push_back(static_cast<size_t>(d));
      result[names_[f]] = nb::ndarray<nb::numpy>(block + offs[f], shape.size(), shape.data(), owner,
                                                  nullptr, {fields[f].code, fields[f].bits, 1})
                              .cast();
    }
    size_t n1[1] = {static_cast<size_t>(n)};
    result["indices"] = nb::ndarray<nb::numpy, int64_t>(out.ids, 1, n1, owner).cast();
    if (per) result["weights"] = nb::ndarray<nb::numpy, float>(out.weights, 1, n1, owner).cast();
    result["discount"] = nb::ndarray<nb::numpy, float>(out.discount, 1, n1, owner).cast();
    return result;
  }

  uint8_t* out_view(nb::handle v, const std::string& name, uint8_t code, uint8_t bits,
                    const std::vector<int64_t>& item, int64_t n, std::vector<nb::ndarray<>>& keep) {
    nb::ndarray<> a;
    if (!nb::try_cast(v, a, false))
      throw BufferError("output '" + name + "' is not a writable array or tensor");
    if (!cpu_device(a.device_type()))
      throw BufferError("output '" + name + "' must be in CPU (optionally pinned) memory");
    if (a.dtype().code != code || a.dtype().bits != bits)
      throw BufferError("output '" + name + "' has dtype " + dtype_name(a.dtype().code, a.dtype().bits) +
                        ", expected " + dtype_name(code, bits));
    std::vector<int64_t> want{n};
    want.insert(want.end(), item.begin(), item.end());
    std::vector<int64_t> got(a.ndim());
    for (size_t i = 0; i < a.ndim(); ++i) got[i] = static_cast<int64_t>(a.shape(i));
    if (got != want)
      throw BufferError("output '" + name + "' has shape " + shape_str(got) + ", expected " +
                        shape_str(want));
    int64_t expect = 1;
    for (size_t i = a.ndim(); i-- > 0;) {
      if (a.shape(i) != 1 && a.stride(i) != expect)
        throw BufferError("output '" + name + "' must be C-contiguous");
      expect *= static_cast<int64_t>(a.shape(i));
    }
    keep.push_back(a);
    return static_cast<uint8_t*>(a.data());
  }

  void sample_into(nb::dict out, int64_t n, double beta) {
    check_n(n);
    const auto& fields = core_->fields();
    std::vector<nb::ndarray<>> keep;
    rlkit::SampleOut so;
    size_t used = 0;
    std::vector<std::vector<uint8_t>> scratch;  // fields the caller did not ask for
    for (size_t f = 0; f < fields.size(); ++f) {
      if (out.contains(names_[f])) {
        so.fields.push_back(out_view(out[names_[f]], fields[f].name, fields[f].code, fields[f].bits,
                                     fields[f].shape, n, keep));
        ++used;
      } else {
        scratch.emplace_back(static_cast<size_t>(n) * fields[f].bytes);
        so.fields.push_back(scratch.back().data());
      }
    }
    const bool per = core_->options().prioritized;
    if (out.contains("indices")) {
      so.ids = reinterpret_cast<int64_t*>(out_view(out["indices"], "indices", 0, 64, {}, n, keep));
      ++used;
    }
    if (per && out.contains("weights")) {
      so.weights = reinterpret_cast<float*>(out_view(out["weights"], "weights", 2, 32, {}, n, keep));
      ++used;
    }
    if (out.contains("discount")) {
      so.discount = reinterpret_cast<float*>(out_view(out["discount"], "discount", 2, 32, {}, n, keep));
      ++used;
    }
    if (used != out.size())
      throw BufferError("sample_into got outputs that are not fields of this buffer; allowed: "
                        "the field names, 'indices', 'discount'" + std::string(per ? ", 'weights'" : ""));
    run_sample(n, beta, so);
  }

  void update_priorities(nb::ndarray<const int64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu> ids,
                         nb::ndarray<const double, nb::ndim<1>, nb::c_contig, nb::device::cpu> p) {
    if (ids.shape(0) != p.shape(0))
      throw BufferError("update_priorities got " + std::to_string(ids.shape(0)) + " indices but " +
                        std::to_string(p.shape(0)) + " priorities");
    core_->update_priorities(ids.data(), p.data(), static_cast<int64_t>(ids.shape(0)));
  }

  nb::object array(size_t rows, const FieldSpec& f) {
    std::vector<size_t> shape{rows};
    for (int64_t d : f.shape) shape.push_back(static_cast<size_t>(d));
    void* p = std::malloc(rows * f.bytes + 1);
    nb::capsule owner(p, [](void* q) noexcept { std::free(q); });
    return nb::ndarray<nb::numpy>(p, shape.size(), shape.data(), owner, nullptr, {f.code, f.bits, 1})
        .cast();
  }
  static void* data_of(nb::handle a) {
    return nb::cast<nb::ndarray<>>(a).data();
  }

  nb::dict get_state() {
    std::unique_lock<std::shared_mutex> lock(core_->structure_mutex());
    const auto& fields = core_->fields();
    const auto& opt = core_->options();
    const size_t n = core_->size();
    nb::dict state, cols;
    for (size_t f = 0; f < fields.size(); ++f) {
      if (opt.share_obs && fields[f].name == "next_obs") continue;
      nb::object a = array(n, fields[f]);
      core_->export_field(f, static_cast<uint8_t*>(data_of(a)));
      cols[names_[f]] = a;
    }
    state["fields"] = cols;
    state["total"] = core_->total();
    state["max_priority"] = core_->max_priority();
    nb::list rng;
    for (uint64_t w : core_->rng().s) rng.append(w);
    state["rng"] = rng;
    if (opt.prioritized) {
      nb::object p = array(n, {"p", 2, 64, {}, 8});
      core_->export_priorities(static_cast<double*>(data_of(p)));
      state["priorities"] = p;
    }
    if (opt.share_obs) {
      size_t obs = 0;
      while (fields[obs].name != "obs") ++obs;
      std::vector<int64_t> slots = core_->side_slots();
      nb::object s = array(slots.size(), {"s", 0, 64, {}, 8});
      nb::object pend = array(slots.size(), {"p", 1, 8, {}, 1});
      nb::object data = array(slots.size(), fields[obs]);
      std::memcpy(data_of(s), slots.data(), slots.size() * 8);
      core_->export_side(slots, static_cast<uint8_t*>(data_of(pend)), static_cast<uint8_t*>(data_of(data)));
      state["side_slots"] = s;
      state["side_pending"] = pend;
      state["side_next_obs"] = data;
    }
    return state;
  }

  // The Python wrapper has already checked the layout, shapes and dtypes of `state`.
  void set_state(nb::dict state) {
    std::unique_lock<std::shared_mutex> lock(core_->structure_mutex());
    const auto& fields = core_->fields();
    const auto& opt = core_->options();
    uint64_t total = nb::cast<uint64_t>(state["total"]);
    core_->restore_counters(total, nb::cast<double>(state["max_priority"]));
    nb::dict cols = nb::cast<nb::dict>(state["fields"]);
    for (size_t f = 0; f < fields.size(); ++f) {
      if (opt.share_obs && fields[f].name == "next_obs") continue;
      core_->import_field(f, static_cast<const uint8_t*>(data_of(cols[names_[f]])));
    }
    if (opt.prioritized)
      core_->import_priorities(static_cast<const double*>(data_of(state["priorities"])));
    if (opt.share_obs) {
      nb::ndarray<> s = nb::cast<nb::ndarray<>>(state["side_slots"]);
      core_->import_side(static_cast<const int64_t*>(s.data()),
                         static_cast<const uint8_t*>(data_of(state["side_pending"])),
                         static_cast<const uint8_t*>(data_of(state["side_next_obs"])), s.shape(0));
    }
    nb::list rng = nb::cast<nb::list>(state["rng"]);
    for (size_t i = 0; i < 4; ++i) core_->rng().s[i] = nb::cast<uint64_t>(rng[i]);
  }

  size_t size() const { return core_->size(); }
  double priority_total() const { return core_->priority_total(); }
  int64_t capacity() const { return static_cast<int64_t>(core_->capacity()); }
  int64_t total() const { return static_cast<int64_t>(core_->total()); }
  void clear() {
    nb::gil_scoped_release release;
    core_->clear();
  }

 private:
  std::unique_ptr<ReplayCore> core_;
  std::vector<nb::str> names_;
  nb::object np_;
};

}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "C++ core of rlkit's replay buffers (see rlkit.replay for the Python API).";
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const BufferError& e) {
      nb::object cls = nb::module_::import_("rlkit.errors").attr("BufferError");
      PyErr_SetString(cls.ptr(), e.what());
    }
  });
  nb::class_<Core>(m, "Core")
      .def(nb::init<int64_t, const std::vector<std::tuple<std::string, std::string, std::vector<int64_t>>>&,
                    bool, double, int64_t, double, int64_t, bool, uint64_t>(),
           "capacity"_a, "fields"_a, "prioritized"_a, "alpha"_a, "n_step"_a, "gamma"_a, "stride"_a,
           "share_obs"_a, "seed"_a)
      .def("add", &Core::add, "data"_a)
      .def("sample", &Core::sample, "n"_a, "beta"_a = 0.0)
      .def("sample_into", &Core::sample_into, "out"_a, "n"_a, "beta"_a = 0.0)
      .def("update_priorities", &Core::update_priorities, "indices"_a, "priorities"_a)
      .def("get_state", &Core::get_state)
      .def("set_state", &Core::set_state, "state"_a)
      .def("clear", &Core::clear)
      .def("__len__", &Core::size)
      .def_prop_ro("capacity", &Core::capacity)
      .def_prop_ro("total", &Core::total)
      .def_prop_ro("priority_total", &Core::priority_total);
}
