/**
 * Export a spec to PyTorch: `exportTorch` writes model.py (the loss entry as an nn.Module whose
 * parameter names are the tree paths), train.py (DDP under torchrun), the project's batches as
 * safetensors shards and a starting checkpoint of ours. See ARCHITECTURE.md, "Export to PyTorch".
 */
export {
  encodeBatch,
  type ExportOptions,
  type ExportResult,
  exportTorch,
  shardName,
} from "./torch_export.ts";
export { modelSource, type RandomRows } from "./torch_model.ts";
export { TORCH_RULES } from "./torch_ops.ts";
