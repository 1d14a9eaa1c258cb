"""UMAP's spectral initialisation: the graph Laplacian's first non-trivial eigenvectors, per
connected component, with the components placed by their centroids.

For a weighted graph ``W`` (symmetric, N x N) with degrees ``d_i = sum_j W_ij``, the normalised
Laplacian is ``L = I - D^{-1/2} W D^{-1/2}``; its smallest eigenvalue is 0 with eigenvector
``sqrt(d)``, and the layout in ``dim`` dimensions is the eigenvectors of the next ``dim`` smallest
eigenvalues (Belkin & Niyogi 2003, "Laplacian eigenmaps"; umap-learn's ``spectral_layout``,
McInnes et al. 2018, section 3 and appendix). These are the eigenvectors of the ``dim + 1`` largest
eigenvalues of ``S = D^{-1/2} W D^{-1/2}`` (``L = I - S``) but for the trivial one, found here
by ARPACK's implicitly restarted Lanczos (``scipy.sparse.linalg.eigsh``, ``which="LA"``) with at
most 32 Lanczos vectors, at umap-learn's tolerance ``1e-4`` and start vector (all ones).
umap-learn asks for the smallest-magnitude eigenvalues of ``L`` with ``sqrt(N)`` Lanczos
vectors, whose reorthogonalisation grows as ``N^1.5`` per step and whose basis takes
``8 N^1.5`` bytes: on the graph of 200,000 points it took 27.9 s and a 715 MB basis, this 2.6 s
and 51 MB, the two subspaces 0.02 to 1.3 degrees apart (``benchmarks/umap_scale.py``;
``tests/unit/test_spectral_init.py`` checks them against a dense eigendecomposition and against
umap-learn's).

A graph of several connected components is laid out as umap-learn's ``multi_component_layout``
does: each component by its own eigenvectors (random points for one of fewer than ``2 dim``
points), scaled to half the distance to the nearest other component and centred on that
component's place. The places are the corners of a cross (``+-e_i``) for at most ``2 dim``
components, else the spectral embedding of the components' centroids with the affinities
``exp(-(d_ab / s)^2)``, where ``d_ab`` are the Euclidean distances between centroids and ``s``
their median, at least ``max d_ab / 25``. umap-learn does not divide by ``s``: ``exp(-d^2)`` is 0
from ``d`` of about 27, components that far apart are unlinked, the centroids' embedding is
undefined (scikit-learn warns "Graph is not fully connected") and the components land in arbitrary
places; with ``s`` every pair stays linked (``exp(-625) > 0``) and the places follow the distances.
Beyond 2,048 components (the dense affinity and its embedding grow as the square and the cube
of their number) the places are the centroids' first ``dim`` principal components instead.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

__all__ = ["spectral_init"]

#: At most this many Lanczos vectors (umap-learn: ``max(2 dim + 3, sqrt(N))``, which is fewer up
#: to 1,024 points: there fewer vectors are the faster).
_LANCZOS_VECTORS = 32

#: Up to this many points a component's eigenvectors come from a dense eigendecomposition.
_DENSE_MAX = 64

#: Beyond this many components their places are the centroids' principal components, not their
#: spectral embedding (a dense count x count affinity, 8 count^2 bytes, embedded by a dense
#: eigensolver: ~15 s at 8,000 components on 2 cores, against 1 s by principal components). Many
#: components come from many groups of duplicates (k or more copies of a point are linked only
#: to each other): a layer's input embeddings of a model without position embeddings repeat
#: every token.
_SPECTRAL_PLACES_MAX = 2048


def spectral_init(
    graph: scipy.sparse.spmatrix, dim: int, data: np.ndarray, rng: np.random.RandomState
) -> np.ndarray:
    """The spectral layout (N, dim), float32, of the symmetric graph ``graph`` (see the module
    docstring), unscaled (each component's coordinates as its eigenvectors give them).

    ``data`` (N, D) gives the components' centroids; ``rng`` draws the points of the smallest
    components and seeds the centroids' embedding.
    """
    from scipy.sparse.csgraph import connected_components

    graph = scipy.sparse.csr_matrix(graph)
    count, labels = connected_components(graph, directed=False)
    n = graph.shape[0]
    if count == 1 and n <= dim:  # fewer eigenvectors than dimensions: random points
        return rng.uniform(low=-10.0, high=10.0, size=(n, dim)).astype(np.float32)
    if count == 1:
        return _eigenvectors(graph, dim, rng).astype(np.float32)
    places = _component_places(data, labels, count, dim, rng)
    out = np.empty((n, dim), np.float32)
    by_label = np.argsort(labels, kind="stable")  # each component's points, in order
    ends = np.cumsum(np.bincount(labels, minlength=count))
    half_gaps = _nearest_gaps(places) / 2.0
    for label in range(count):
        members = by_label[ends[label - 1] if label else 0 : ends[label]]
        half_gap = half_gaps[label]
        if len(members) < 2 * dim or len(members) <= dim + 1:
            spots = rng.uniform(low=-half_gap, high=half_gap, size=(len(members), dim))
        else:
            spots = _eigenvectors(graph[members][:, members], dim, rng)
            spots *= half_gap / np.abs(spots).max()
        out[members] = spots + places[label]
    return out


def _eigenvectors(graph: scipy.sparse.csr_matrix, dim: int, rng) -> np.ndarray:
    """The eigenvectors of ``S = D^{-1/2} W D^{-1/2}`` for its 2nd to ``(dim + 1)``-th largest
    eigenvalues (those of ``L = I - S`` for its 2nd to ``(dim + 1)``-th smallest), by
    decreasing eigenvalue. If ARPACK does not converge, umap-learn's fallback: a warning and
    points drawn uniformly in ``[-10, 10]``."""
    n = graph.shape[0]
    inv_sqrt_degree = 1.0 / np.sqrt(np.asarray(graph.sum(axis=0), np.float64).ravel())
    scale = scipy.sparse.diags(inv_sqrt_degree)
    s = (scale @ graph.astype(np.float64) @ scale).tocsr()
    k = dim + 1
    if n <= _DENSE_MAX:
        values, vectors = np.linalg.eigh(s.toarray())
    else:
        try:
            values, vectors = scipy.sparse.linalg.eigsh(
                s,
                k,
                which="LA",
                ncv=min(n, max(2 * k + 1, min(_LANCZOS_VECTORS, int(np.sqrt(n))))),
                tol=1e-4,
                v0=np.ones(n),
                maxiter=5 * n,
            )
        except scipy.sparse.linalg.ArpackError:
            warnings.warn(
                "Spectral initialisation failed: the eigensolver did not converge, likely "
                "because the eigenvalues are too close (add some noise or jitter to the data). "
                "Starting from random points instead.",
                stacklevel=4,
            )
            return rng.uniform(low=-10.0, high=10.0, size=(n, dim))
    order = np.argsort(values)[::-1][1:k]
    return vectors[:, order]


def _nearest_gaps(places: np.ndarray) -> np.ndarray:
    """Each place's distance to the nearest other place that does not coincide with it (2 where
    all do)."""
    from scipy.spatial import cKDTree

    count = len(places)
    near, _ = cKDTree(places).query(places, k=min(count, 16))
    gaps = np.where(near > 0, near, np.inf).min(axis=1)
    for row in np.flatnonzero(np.isinf(gaps)):  # the 16 nearest coincide: look at all places
        apart = np.linalg.norm(places - places[row], axis=1)
        gaps[row] = apart[apart > 0].min(initial=np.inf)
    return np.where(np.isinf(gaps), 2.0, gaps)


def _component_places(data, labels, count: int, dim: int, rng) -> np.ndarray:
    """Where each component is centred (count, dim): a cross's corners for at most ``2 dim``
    components, else the scaled-affinity spectral embedding of the centroids (module docstring)
    or, beyond :data:`_SPECTRAL_PLACES_MAX` components, the centroids' first ``dim`` principal
    components; divided by the largest coordinate as umap-learn does."""
    if count <= 2 * dim:
        half = int(np.ceil(count / 2.0))
        base = np.hstack([np.eye(half), np.zeros((half, dim - half))])
        return np.vstack([base, -base])[:count]
    from scipy.spatial.distance import pdist, squareform
    from sklearn.manifold import SpectralEmbedding

    n = len(labels)
    members = scipy.sparse.csr_matrix(
        (np.ones(n, data.dtype), (labels, np.arange(n))), shape=(count, n)
    )
    centroids = np.asarray(members @ data, np.float64) / np.bincount(labels)[:, None]
    if count > _SPECTRAL_PLACES_MAX:
        import torch

        from explorer.kernel.projection import pca

        places = pca(torch.from_numpy(centroids), dim).coords.numpy().astype(np.float64)
        return places / (places.max() or 1.0)
    gaps = pdist(centroids)
    s = max(float(np.median(gaps)), float(gaps.max()) / 25.0) or 1.0  # 1 if all coincide
    affinity = np.exp(-((squareform(gaps) / s) ** 2))
    embedding = SpectralEmbedding(dim, affinity="precomputed", random_state=rng)
    places = embedding.fit_transform(affinity)
    return places / (places.max() or 1.0)
