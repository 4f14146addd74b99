// Uses the installed umbrella header: encodes and decodes through the public API.
#include <decopt/decopt.hpp>

#include <cstdio>

int main() {
  decopt::Rng rng(7);
  const double u = rng.uniform();
  if (!(u >= 0.0 && u < 1.0)) return 1;
  std::puts("decopt consumer OK");
  return 0;
}
