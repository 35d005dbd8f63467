use candle_core::{DType, Result, Storage, Tensor};

use super::NormalCache;

#[derive(Debug, Clone)]
pub struct SingleCache {
    // all_data is an option on a Tensor, this makes it possible to only create the actual tensor
    // on the first call where the batch size is easily known.
    // Also this makes it safe to clone a KvCache that has been reset (as in it will not share
    // its internal state with the cloned instance).
    pub all_data: Option<Tensor>,
    pub dim: usize,
    pub current_seq_len: usize,
    pub capacity_seq_len: usize,
    pub max_seq_len: usize,
}

impl SingleCache {
    pub fn new(dim: usize, max_seq_len: usize, capacity_seq_len: usize) -> Self {
        Self {
            all_data: None,
            dim,
            current_seq_len: 0,
            max_seq_len,
            capacity_seq_len,
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn current_seq_len(&self) -> usize {
        self.current_seq_len
    }

    pub fn max_seq_len(&self) -> usize {
        self.max_seq_len
    }

    pub fn all_data(&self) -> Option<&Tensor> {
        self.all_data.as_ref()
    }

    pub fn current_data(&self) -> Result<Option<Tensor>> {
        let data = match self.all_data.as_ref() {
            None => None,
            Some(d) => Some(d.narrow(self.dim, 0, self.current_seq_len)?),
        };
        Ok(data)
    }

    pub fn reset(&mut self) {
        self.current_seq_len = 0;
        self.all_data = None;
    }

    pub fn try_set_len(&self, len: usize) -> candle_core::Result<()> {
        if len > self.capacity_seq_len {
            candle_core::bail!(
                "kv-cache: requested length ({}) exceeds current capacity ({})",
                len,
                self.capacity_seq_len
            );
        }
        Ok(())
    }

    pub fn set_len(&mut self, len: usize) -> candle_core::Result<()> {
        self.try_set_len(len)?;
        self.current_seq_len = len;
        Ok(())
    }

    /// Troupe patch: this cache as the prefix cache keeps it: the tokens written and not the
    /// capacity grown ahead of them (up to 255 tokens of zeros), on the CPU in F16 rather than
    /// F32. A stored entry is only read back, once, by `restored`.
    pub fn stored(&self) -> Result<Self> {
        let mut out = self.clone();
        let Some(data) = self.all_data.as_ref() else {
            return Ok(out);
        };
        if self.current_seq_len == 0 {
            out.all_data = None;
            return Ok(out);
        }
        let kept = data.narrow(self.dim, 0, self.current_seq_len)?;
        let compact = data.device().is_cpu() && data.dtype() == candle_core::DType::F32;
        // A view of the first tokens is strided (the capacity lies between heads): `copy` would
        // keep that layout, and the whole capacity behind it, so it is made contiguous.
        out.all_data = Some(if compact {
            kept.to_dtype(candle_core::DType::F16)?
        } else if kept.is_contiguous() {
            kept.copy()?
        } else {
            kept.contiguous()?
        });
        out.capacity_seq_len = self.current_seq_len;
        Ok(out)
    }

    /// Troupe patch: a stored cache ready to be written again, in the model's `dtype`, in
    /// storage of its own (a sequence writes its new tokens in place), with room for `room`
    /// tokens in steps of CACHE_GROW_SIZE as a new cache gets for its prompt: restored at its
    /// exact length, the first new token grew it at once, the old and the grown copy both held.
    pub fn restored(&self, dtype: candle_core::DType, room: usize) -> Result<Self> {
        let mut out = self.clone();
        if let Some(data) = self.all_data.as_ref() {
            let grow = NormalCache::CACHE_GROW_SIZE;
            let capacity = (room.div_ceil(grow) * grow)
                .min(self.max_seq_len)
                .max(self.current_seq_len);
            let mut shape = data.dims().to_vec();
            shape[self.dim] = capacity;
            let all = Tensor::zeros(shape, dtype, data.device())?;
            if data.dtype() == dtype {
                all.slice_set(data, self.dim, 0)?;
            } else {
                all.slice_set(&data.to_dtype(dtype)?, self.dim, 0)?;
            }
            out.all_data = Some(all);
            out.capacity_seq_len = capacity;
        }
        Ok(out)
    }

    /// Troupe patch: the bytes this cache's tensor holds.
    pub fn bytes(&self) -> usize {
        self.all_data
            .as_ref()
            .map_or(0, |d| d.elem_count() * d.dtype().size_in_bytes())
    }

    /// Troupe patch: the dtype this cache keeps: what it holds already (a sequence's cache is
    /// made in its preallocated cache's dtype, `super::kv_dtype`), else `super::kv_dtype`.
    fn kept_dtype(&self, src: &Tensor) -> DType {
        match &self.all_data {
            Some(data) => data.dtype(),
            None => super::kv_dtype(src.dtype(), src.device()),
        }
    }

    pub fn append(&mut self, src: &Tensor) -> Result<()> {
        // Troupe patch: written in the dtype the cache keeps (see `kept_dtype`).
        let kept = self.kept_dtype(src);
        let converted;
        let src = if src.dtype() == kept {
            src
        } else {
            converted = to_dtype_fast(src, kept)?;
            &converted
        };
        let seq_len = src.dim(self.dim)?;
        // This doesn't seem very idiomatic but because the creation can fail, it's tricky to use
        // self.all_data.get_or_insert_with.
        if self.all_data.is_none() {
            // Troupe patch: a new cache is sized to what is written first (a prompt), in steps of
            // CACHE_GROW_SIZE. Upstream kept the capacity of whatever the cache last held (after
            // `reset`, a long chat's), or started at one step and grew at once, copying.
            let grow = NormalCache::CACHE_GROW_SIZE;
            self.capacity_seq_len = (seq_len.div_ceil(grow).max(1) * grow).min(self.max_seq_len);
            let mut shape = src.dims().to_vec();
            shape[self.dim] = self.capacity_seq_len;
            let ad = Tensor::zeros(shape, src.dtype(), src.device())?;
            self.all_data = Some(ad);
        };

        // Expand kv cache
        if self.current_seq_len + seq_len > self.capacity_seq_len {
            let diff = self.current_seq_len + seq_len - self.capacity_seq_len;
            let n_blocks_needed = diff.div_ceil(NormalCache::CACHE_GROW_SIZE);
            self.capacity_seq_len += n_blocks_needed * NormalCache::CACHE_GROW_SIZE;
            if self.capacity_seq_len > self.max_seq_len {
                candle_core::bail!(
                    "kv-cache: requested capacity ({}) above max seq len ({})",
                    self.capacity_seq_len,
                    self.max_seq_len
                )
            }
            let mut shape = src.dims().to_vec();
            shape[self.dim] = self.capacity_seq_len;
            let ad = Tensor::zeros(shape, src.dtype(), src.device())?;
            ad.slice_set(self.all_data.as_ref().unwrap(), self.dim, 0)?;
            self.all_data = Some(ad);
        }

        let ad = self.all_data.as_mut().unwrap();

        ad.slice_set(src, self.dim, self.current_seq_len)?;
        self.current_seq_len += seq_len;
        Ok(())
    }
}

/// Troupe patch: `src` in `dtype`; a contiguous F32 tensor on the CPU goes to F16 through the
/// `half` crate's slice conversion (F16C where the CPU has it), several times faster than
/// candle's per-value one. A prefill writes hundreds of keys and values per layer at once.
fn to_dtype_fast(src: &Tensor, dtype: DType) -> Result<Tensor> {
    use half::slice::HalfFloatSliceExt;
    if dtype == DType::F16 && src.dtype() == DType::F32 && src.is_contiguous() {
        let (storage, layout) = src.storage_and_layout();
        if let Storage::Cpu(cpu) = &*storage {
            let all = cpu.as_slice::<f32>()?;
            let from = &all[layout.start_offset()..layout.start_offset() + src.elem_count()];
            let mut out = vec![half::f16::ZERO; from.len()];
            out.convert_from_f32_slice(from);
            return Tensor::from_vec(out, src.shape(), src.device());
        }
    }
    src.to_dtype(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    // Troupe patch: a cache kept in F16 (as on the CPU where the app asks) is stored compact and
    // contiguous, exactly its tokens, and restored to be written again past its length (a
    // strided stored view had made that growth fail: "slice-set only supports contiguous").
    #[test]
    fn an_f16_cache_is_stored_compact_and_written_again() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::arange(0f32, 40.0, &dev)?.reshape((1, 2, 5, 4))?;
        let x16 = to_dtype_fast(&x, DType::F16)?;
        let values = |t: &Tensor| -> Result<Vec<f32>> {
            t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()
        };
        assert_eq!(values(&x16)?, values(&x.to_dtype(DType::F16)?)?);

        let mut live = SingleCache::new(2, 4096, 512);
        live.append(&x16)?;
        let stored = live.stored()?;
        let data = stored.all_data().expect("it holds the tokens");
        assert!(data.is_contiguous());
        assert_eq!(data.dims(), &[1, 2, 5, 4]);
        assert_eq!(stored.bytes(), 2 * 5 * 4 * 2);

        let mut again = stored.restored(DType::F16, 0)?;
        again.append(&x16.narrow(2, 0, 1)?.contiguous()?)?;
        let now = again.current_data()?.expect("six tokens");
        assert_eq!(now.dims(), &[1, 2, 6, 4]);
        assert_eq!(values(&now.narrow(2, 0, 5)?)?, values(&x)?);
        assert_eq!(values(&now.narrow(2, 5, 1)?)?, values(&x.narrow(2, 0, 1)?)?);
        Ok(())
    }

    // Troupe patch: a new cache is sized to its first write in steps of 256 tokens: a prompt of
    // 600 gets room for 768 at once (upstream: 512, then grown by a copy to 1,024), and after a
    // long chat a reset cache starts small again (upstream kept the long chat's capacity).
    #[test]
    fn a_new_cache_is_sized_to_its_first_write() -> Result<()> {
        let dev = Device::Cpu;
        let tokens = |n: usize| Tensor::ones((1, 2, n, 4), DType::F16, &dev);
        let mut cache = SingleCache::new(2, 4096, 512);
        cache.append(&tokens(600)?)?;
        assert_eq!(cache.capacity_seq_len, 768);
        cache.append(&tokens(900)?)?;
        assert_eq!(cache.capacity_seq_len, 1536);
        assert_eq!(cache.current_seq_len, 1500);

        cache.reset();
        cache.append(&tokens(10)?)?;
        assert_eq!(cache.capacity_seq_len, 256);
        let data = cache.all_data().expect("written");
        assert_eq!(data.dims(), &[1, 2, 256, 4]);
        let written = cache.current_data()?.expect("ten tokens");
        assert_eq!(written.dims(), &[1, 2, 10, 4]);

        let mut short = SingleCache::new(2, 256, 512);
        short.append(&tokens(100)?)?;
        assert_eq!(short.capacity_seq_len, 256);
        Ok(())
    }
}
