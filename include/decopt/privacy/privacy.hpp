// decopt/privacy/privacy.hpp — differential privacy for decentralized training: per-sample
// clipping rules (Abadi, NSGD, Auto-S, DP-PSAC), the Gaussian mechanism, the private mini-batch
// gradient, and the Rényi-DP accountant of the Poisson-subsampled Gaussian mechanism.
//
// Typical use, once per local step of node i with batch size B drawn at rate q = B/n_i:
//   decopt::privacy::private_gradient(per_sample, decopt::privacy::PsacClipping{1.0}, sigma, rng, grad);
//   accountant.step(sigma, q);
//   ... accountant.epsilon(1e-5)
// σ for a budget fixed in advance: decopt::privacy::find_noise_multiplier(eps, delta, q, steps).
// How far a rule moves the update from the true batch mean: decopt::privacy::clipping_deviation.
#pragma once

#include "decopt/privacy/clipping.hpp"
#include "decopt/privacy/deviation.hpp"
#include "decopt/privacy/gaussian_mechanism.hpp"
#include "decopt/privacy/private_gradient.hpp"
#include "decopt/privacy/rdp_accountant.hpp"
