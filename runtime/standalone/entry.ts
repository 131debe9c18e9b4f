/**
 * The entry `deno bundle` turns into a generated module's runtime.js: plan interpretation (the
 * executor), weight loading, sampling, PNG encoding. Nothing here may pull in compiler passes or
 * the DSL; tests/generated_module_test.ts checks the bundle's module list. Each export is typed by
 * its declaration in api.ts, which ships as runtime.d.ts.
 */
import type * as Api from "./api.ts";
import { CheckpointError as FileError } from "../file_errors.ts";
import { imageToPng as encodeImage } from "./images.ts";
import { openModel as open } from "./model.ts";

export const openModel: typeof Api.openModel = open;
export const imageToPng: typeof Api.imageToPng = encodeImage;
export const CheckpointError: typeof Api.CheckpointError = FileError;
