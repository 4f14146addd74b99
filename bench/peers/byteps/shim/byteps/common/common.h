// Shim for building BytePS's compressor sources outside BytePS (benchmarking only): the DataType enum of its common.h.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
namespace byteps { namespace common {
enum DataType { BYTEPS_FLOAT32 = 0, BYTEPS_FLOAT64 = 1, BYTEPS_FLOAT16 = 2, BYTEPS_UINT8 = 3, BYTEPS_INT32 = 4 };
}}
