// trt-equiv-runner: run a serialized TensorRT engine over a .npy batch (see cpp/README.md).
#include "tensorrt_engine.hpp"
#include "trt_equiv/runner.hpp"

int main(int argc, char** argv) {
    return trt_equiv::run_cli(argc, argv, "trt-equiv-runner", trt_equiv::load_tensorrt_engine);
}
