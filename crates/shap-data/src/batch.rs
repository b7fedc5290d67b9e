//! Seeded, deterministic shuffling and batching.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::DataError;

/// Shuffles the indices `0..n` with a ChaCha8 generator seeded from `seed` and cuts them into
/// batches of `batch_size` (the last batch is shorter when `batch_size` does not divide `n`).
///
/// No global RNG is used: the same `(n, batch_size, seed)` always gives the same batches, on
/// every machine and thread count. For one shuffle per epoch pass e.g. `seed + epoch`.
/// `n == 0` gives no batch.
///
/// # Errors
/// [`DataError::ZeroBatchSize`] if `batch_size == 0`.
///
/// # Example
/// ```
/// let batches = shap_data::shuffled_batches(10, 4, 42)?;
/// assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2]);
/// let mut all: Vec<usize> = batches.concat();
/// all.sort_unstable();
/// assert_eq!(all, (0..10).collect::<Vec<_>>());
/// # Ok::<(), shap_data::DataError>(())
/// ```
pub fn shuffled_batches(
    n: usize,
    batch_size: usize,
    seed: u64,
) -> Result<Vec<Vec<usize>>, DataError> {
    if batch_size == 0 {
        return Err(DataError::ZeroBatchSize);
    }
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    order.shuffle(&mut rng);
    Ok(order.chunks(batch_size).map(<[usize]>::to_vec).collect())
}
