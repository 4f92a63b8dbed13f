// trt-equiv-runner-cpu: the real runner's CLI over the CPU test engine (see cpu_engine.hpp). Test-only.
#include "cpu_engine.hpp"
#include "trt_equiv/runner.hpp"

int main(int argc, char** argv) {
    return trt_equiv::run_cli(argc, argv, "trt-equiv-runner-cpu", trt_equiv::testing::load_cpu_engine);
}
