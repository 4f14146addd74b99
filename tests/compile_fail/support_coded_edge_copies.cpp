// Must NOT compile: SupportCoded keeps its support per neighbour of one public copy, not per edge
// copy. The ctest test compile_fail_support_coded_edge_copies checks that the compiler says why.
#include <decopt/decopt.hpp>

int main() {
  using Rejected = decopt::EdgeCopies<decopt::MalcomCompressor>;
  return sizeof(Rejected) > 0 ? 0 : 1;
}
