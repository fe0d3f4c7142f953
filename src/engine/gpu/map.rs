//! Map jobs on the GPU: the [`MapDevice`] a model uses for bulk set-up work while building
//! a batch (the CPU twin runs the same job on rayon, see [`crate::engine::model::CpuMap`]).

use std::sync::Arc;

use crate::engine::backend::Precision;
use crate::engine::gpu::backend::{download_reals, upload_reals};
use crate::engine::gpu::{preprocess, uniforms::MapDims, wait, Access, GpuContext, WG};
use crate::engine::model::{MapDevice, MapJob};
use crate::{NeqkinError, Result};

/// Runs map jobs on one adapter at one precision.
pub struct GpuMap {
    ctx: Arc<GpuContext>,
    precision: Precision,
}

impl GpuMap {
    /// A map device on `ctx` computing in `precision`.
    pub fn new(ctx: Arc<GpuContext>, precision: Precision) -> Self {
        GpuMap { ctx, precision }
    }
}

impl MapDevice for GpuMap {
    fn describe(&self) -> String {
        format!("gpu {} ({})", self.ctx.info().name, self.precision)
    }

    fn map(&self, job: &MapJob<'_>) -> Result<Vec<f64>> {
        let ctx = &*self.ctx;
        let real = GpuContext::real_size(self.precision);
        let per_item = job.outputs_per_item.max(1) as u64;
        // Items per dispatch: the output of one chunk must fit one storage binding.
        let chunk = (ctx.max_binding() / (per_item * real)).clamp(1, 1 << 24);
        let source = preprocess::preprocess(&job.kernel.name, &job.kernel.source, self.precision)?;
        let kernel = ctx.kernel(
            &job.kernel.name,
            &source,
            "map",
            &[(0, Access::Uniform), (1, Access::Read), (2, Access::ReadWrite)],
        )?;
        let params_len = job.params.len().max(1);
        let out_len = chunk.min(job.items as u64).max(1) * per_item;
        let (dims, params, out, bind_group) = ctx.scoped(
            || format!("allocating map job {}", job.kernel.name),
            || {
                let dims = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("map dims"),
                    size: std::mem::size_of::<MapDims>() as u64,
                    usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                let params = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("map params"),
                    size: params_len as u64 * real,
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                let out = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("map out"),
                    size: out_len * real,
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                });
                let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("map"),
                    layout: &kernel.layout,
                    entries: &[
                        wgpu::BindGroupEntry { binding: 0, resource: dims.as_entire_binding() },
                        wgpu::BindGroupEntry { binding: 1, resource: params.as_entire_binding() },
                        wgpu::BindGroupEntry { binding: 2, resource: out.as_entire_binding() },
                    ],
                });
                (dims, params, out, bind_group)
            },
        )?;
        upload_reals(ctx, self.precision, &params, 0, job.params);
        let mut result = Vec::with_capacity(job.items * job.outputs_per_item);
        let mut start = 0u64;
        while start < job.items as u64 {
            let end = (start + chunk).min(job.items as u64);
            let d = MapDims {
                item_offset: u32::try_from(start)
                    .map_err(|_| NeqkinError::invalid("map", "more than 2^32 items in one map job"))?,
                item_end: end as u32,
                outputs_per_item: per_item as u32,
                params_len: params_len as u32,
            };
            ctx.queue.write_buffer(&dims, 0, bytemuck::bytes_of(&d));
            let (gx, gy) = ctx.grid((end - start).div_ceil(u64::from(WG)));
            ctx.scoped(
                || format!("running map job {}", job.kernel.name),
                || {
                    let mut encoder = ctx.device.create_command_encoder(&Default::default());
                    {
                        let mut pass = encoder.begin_compute_pass(&Default::default());
                        pass.set_pipeline(&kernel.pipeline);
                        pass.set_bind_group(0, &bind_group, &[]);
                        pass.dispatch_workgroups(gx, gy, 1);
                    }
                    ctx.queue.submit([encoder.finish()]);
                },
            )?;
            wait(ctx, "map job")?;
            result.extend(download_reals(ctx, self.precision, &out, 0, ((end - start) * per_item) as usize)?);
            start = end;
        }
        result.truncate(job.items * job.outputs_per_item);
        Ok(result)
    }
}
