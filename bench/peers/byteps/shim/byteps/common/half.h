// Shim: BytePS's half_t as a wrapper of the compiler's _Float16 (only the float32 path is measured).
#pragma once
namespace mshadow { namespace half { struct half_t { _Float16 v; half_t() = default; half_t(float f) : v(static_cast<_Float16>(f)) {} operator float() const { return static_cast<float>(v); } half_t& operator-=(float f) { *this = half_t(float(*this) - f); return *this; } }; } }
