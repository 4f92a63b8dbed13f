// npy-copy: read a .npy with the runner's reader and write it back with its writer. Test-only: lets the
// Python tests check that NumPy <-> runner round trips are bit-exact, and the float32 -> float16 conversion
// against NumPy's.
//   npy-copy IN OUT [--version 1|2|3] [--dtype float32|float16]
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "trt_equiv/errors.hpp"
#include "trt_equiv/half.hpp"
#include "trt_equiv/npy.hpp"

int main(int argc, char** argv) {
    using namespace trt_equiv;
    try {
        std::vector<std::string> args(argv + 1, argv + argc);
        std::vector<std::string> paths;
        int version = 0;
        std::string dtype;
        for (std::size_t i = 0; i < args.size(); ++i) {
            if (args[i] == "--version" && i + 1 < args.size()) {
                version = std::stoi(args[++i]);
            } else if (args[i] == "--dtype" && i + 1 < args.size()) {
                dtype = args[++i];
            } else if (args[i].rfind("--", 0) == 0) {
                throw UsageError("unknown option " + args[i]);
            } else {
                paths.push_back(args[i]);
            }
        }
        if (paths.size() != 2) throw UsageError("usage: npy-copy IN OUT [--version 1|2|3] [--dtype float32|float16]");
        const NpyArray a = read_npy(paths[0]);
        if (dtype.empty() || dtype == dtype_name(a.dtype)) {
            write_npy(paths[1], a.dtype, a.shape, a.data.data(), version);
        } else if (dtype == "float16") {
            const std::vector<float> f = a.to_float32();
            std::vector<std::uint16_t> h(f.size());
            floats_to_halves(f.data(), h.data(), f.size());
            write_npy(paths[1], DType::kFloat16, a.shape, h.data(), version);
        } else if (dtype == "float32") {
            write_npy(paths[1], DType::kFloat32, a.shape, a.to_float32().data(), version);
        } else {
            throw UsageError("--dtype must be float32 or float16, got " + dtype);
        }
        return 0;
    } catch (const RunnerError& e) {
        std::cerr << "npy-copy: " << exit_code_meaning(e.code()) << ": " << e.what() << "\n";
        return static_cast<int>(e.code());
    } catch (const std::exception& e) {
        std::cerr << "npy-copy: " << e.what() << "\n";
        return 1;
    }
}
