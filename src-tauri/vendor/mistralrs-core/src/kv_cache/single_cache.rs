use candle_core::{Result, Tensor};

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
    /// capacity grown ahead of them (up to 511 tokens of zeros), on the CPU in F16 rather than
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
        out.all_data = Some(if compact {
            kept.to_dtype(candle_core::DType::F16)?
        } else {
            kept.copy()?
        });
        out.capacity_seq_len = self.current_seq_len;
        Ok(out)
    }

    /// Troupe patch: a stored cache ready to be written again, in the model's `dtype`, in
    /// storage of its own (a sequence writes its new tokens in place).
    pub fn restored(&self, dtype: candle_core::DType) -> Result<Self> {
        let mut out = self.clone();
        if let Some(data) = self.all_data.as_ref() {
            out.all_data = Some(if data.dtype() == dtype {
                data.copy()?
            } else {
                data.to_dtype(dtype)?
            });
        }
        Ok(out)
    }

    /// Troupe patch: the bytes this cache's tensor holds.
    pub fn bytes(&self) -> usize {
        self.all_data
            .as_ref()
            .map_or(0, |d| d.elem_count() * d.dtype().size_in_bytes())
    }

    pub fn append(&mut self, src: &Tensor) -> Result<()> {
        let seq_len = src.dim(self.dim)?;
        // This doesn't seem very idiomatic but because the creation can fail, it's tricky to use
        // self.all_data.get_or_insert_with.
        if self.all_data.is_none() {
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
