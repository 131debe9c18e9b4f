/**
 * Assembles an image input of a batch on the device from a table uploaded once (spec/data.ts
 * `ImageGather` gives the geometry): one invocation per output value. The per-image rows (table
 * row, dx, dy) are i32 words in the same arena as the output, written by the host each step.
 *
 *   out[r, c, py, px] = 0                                   rows[r].row < 0 (an absent image)
 *                     = background                          (py, px) outside the placed side^2
 *                     = scale * mean_{j,k < f} src(row, crop + y f + k - dx, crop + x f + j - dy) + bias
 *   with (y, x) = (py, px) - pad and src = 0 outside the srcSide^2 image.
 */
import type { ImageGather } from "../spec/data.ts";
import { bindingDecl, grid, type Kernel, type KernelBinding } from "./kernel.ts";
import { literal } from "./wgsl.ts";

const WORKGROUP = 256;

export interface ImageGatherPlacement {
  /** Images in the output (B * N). */
  readonly images: number;
  /** Rows in the table. */
  readonly tableRows: number;
  /** The table's buffer. */
  readonly tableBuffer: string;
  /** The arena holding both the rows and the output, and their word offsets in it. */
  readonly arena: string;
  readonly rowsOffset: number;
  readonly outOffset: number;
}

export function imageGatherKernel(g: ImageGather, at: ImageGatherPlacement): Kernel {
  const bindings: KernelBinding[] = [
    { binding: 0, buffer: at.tableBuffer, access: "read" },
    { binding: 1, buffer: at.arena, access: "read_write" },
  ];
  const plane = g.size * g.size;
  const total = at.images * g.channels * plane;
  const src = g.srcSide * g.srcSide;
  const f32 = (x: number) => literal(x, "f32");
  return {
    name: `gather_${g.input}`,
    doc: `${at.images} images of ${g.input} from table ${g.table} (${at.tableRows} x ${g.srcSide}^2): ` +
      `shift, ${g.factor}x${g.factor} mean, pad ${g.pad} into ${g.size}^2 x ${g.channels}`,
    ops: ["gather_image"],
    wgsl: `${bindings.map(bindingDecl).join("\n")}
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * ${WORKGROUP}u;
  if (i >= ${total}u) { return; }
  let r = i / ${g.channels * plane}u;
  let p = i % ${plane}u;
  let y = i32(p / ${g.size}u) - ${g.pad};
  let x = i32(p % ${g.size}u) - ${g.pad};
  let row = bitcast<i32>(${at.arena}[${at.rowsOffset}u + 3u * r]);
  let dx = bitcast<i32>(${at.arena}[${at.rowsOffset}u + 3u * r + 1u]);
  let dy = bitcast<i32>(${at.arena}[${at.rowsOffset}u + 3u * r + 2u]);
  var v = 0.0;
  if (row >= 0 && row < ${at.tableRows}) {
    if (y < 0 || x < 0 || y >= ${g.side} || x >= ${g.side}) {
      v = ${f32(g.background)};
    } else {
      var sum = 0.0;
      for (var j = 0; j < ${g.factor}; j++) {
        for (var k = 0; k < ${g.factor}; k++) {
          let sy = ${g.crop} + y * ${g.factor} + j - dy;
          let sx = ${g.crop} + x * ${g.factor} + k - dx;
          if (sx >= 0 && sy >= 0 && sx < ${g.srcSide} && sy < ${g.srcSide}) {
            sum += ${at.tableBuffer}[u32(row) * ${src}u + u32(sy * ${g.srcSide} + sx)];
          }
        }
      }
      v = ${f32(g.scale)} * (sum / ${f32(g.factor * g.factor)}) + ${f32(g.bias)};
    }
  }
  ${at.arena}[${at.outOffset}u + i] = bitcast<u32>(v);
}
`,
    workgroupSize: [WORKGROUP, 1, 1],
    dispatch: grid(Math.ceil(total / WORKGROUP)),
    bindings,
    flops: total * (g.factor * g.factor + 2),
    bytes: 4 * (total + at.images * 3 + Math.min(at.images, at.tableRows) * src),
  };
}
