// Shim: BytePS's logging macros as a stream that aborts when a check fails (benchmarking only).
#pragma once
#include <cstdlib>
#include <iostream>
struct BpsFatal { bool fire; ~BpsFatal(){ if(fire){ std::cerr << std::endl; std::abort(); } } template<class T> BpsFatal& operator<<(const T& x){ if(fire) std::cerr << x; return *this; } };
#define BPS_CHECK(x) BpsFatal{!(x)}
#define BPS_CHECK_EQ(a,b) BpsFatal{!((a)==(b))}
#define BPS_CHECK_GT(a,b) BpsFatal{!((a)>(b))}
#define BPS_CHECK_LE(a,b) BpsFatal{!((a)<=(b))}
#define BPS_LOG(level) BpsFatal{std::string(#level)=="FATAL"}
