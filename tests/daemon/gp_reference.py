#!/usr/bin/env python3
"""Reference values for tests/daemon/test_gp.c.

Computes the posterior mean and variance and the log marginal likelihood
of a Gaussian process with the Matern-5/2 ARD kernel on the small fixed
dataset of test_gp.c, with plain formulas (Rasmussen and Williams, Gaussian
Processes for Machine Learning, eqs. 2.25, 2.26, 2.30 and 4.17) and numpy's
dense solver, independently of daemon/gp.c. Run it with Debian's
python3-numpy and paste the printed numbers into test_gp.c.
"""
import numpy as np

X = np.array([[0.1, 0.2], [0.4, 0.9], [0.7, 0.3], [0.95, 0.6], [0.3, 0.55]])
y = np.array([1.0, -0.5, 2.0, 0.3, 0.8])
lengthscales = np.array([0.3, 0.5])
signal = 1.5
noise = 0.01
tests = np.array([[0.5, 0.5], [0.0, 1.0], [0.1, 0.2]])


def matern52(a, b):
    d = (a[:, None, :] - b[None, :, :]) / lengthscales
    r = np.sqrt((d ** 2).sum(-1))
    return signal * (1 + np.sqrt(5) * r + 5 * r ** 2 / 3) * np.exp(-np.sqrt(5) * r)


# Outputs standardized with the population standard deviation.
mean_y, sd_y = y.mean(), y.std()
ys = (y - mean_y) / sd_y

K = matern52(X, X) + noise * np.eye(len(X))
alpha = np.linalg.solve(K, ys)
Ks = matern52(tests, X)
mean = mean_y + sd_y * Ks @ alpha
var = sd_y ** 2 * (signal - np.einsum("ij,ji->i", Ks, np.linalg.solve(K, Ks.T)))
sign, logdet = np.linalg.slogdet(K)
lml = -0.5 * ys @ alpha - 0.5 * logdet - 0.5 * len(X) * np.log(2 * np.pi)

np.set_printoptions(precision=17)
print("mean", repr(mean))
print("variance", repr(var))
print("log marginal likelihood", repr(lml))
