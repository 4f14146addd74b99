// Must NOT compile: TopK is biased and DirectGossipStep has no error memory to correct it.
// The ctest test compile_fail_biased_direct checks that the compiler says why.
#include <decopt/decopt.hpp>

int main() {
  using Rejected = decopt::DecentralizedOptimizer<decopt::Compressor<decopt::TopK, decopt::Identity, decopt::RawCoder>,
                                                  decopt::NoProx, decopt::DirectGossipStep>;
  return sizeof(Rejected) > 0 ? 0 : 1;
}
