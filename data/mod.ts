/**
 * Data sources and batch assembly for training, with their evaluations: MNIST captions (a digit
 * classifier reads generated digits), the built-in shapes scenes (an exact pixel checker), and the
 * user's own captioned pictures and text files (own_images.ts, own_text.ts; `--data` in own_data.ts). Each
 * evaluation belongs with its data; the runtime knows nothing of digits or shapes.
 */
export { type DigitSet, loadMnist, MNIST_PIXELS, MNIST_SIDE, shiftedDigit } from "./mnist.ts";
export {
  CAPTION_TEMPLATES,
  digitCaption,
  digitImage,
  mnistCaptions,
  type MnistCaptionsConfig,
  type MnistCaptionsOptions,
  type MnistCaptionsSource,
  T1_CAPTION_TEMPLATE,
  testDigits,
} from "./mnist_captions.ts";
export { type ClassifierOptions, type DigitClassifier, digitClassifier } from "./digit_classifier.ts";
export {
  balancedIndices,
  type DigitEval,
  type DigitEvalOptions,
  type DigitEvalOutput,
  evaluateDigits,
  formatDigitEval,
  mentionedDigit,
  msPerStep,
  percent,
  percentRange,
  promptTemplate,
  wilsonInterval,
} from "./digit_eval.ts";
export {
  isShapesSource,
  SHAPES_CAPTION_BYTES,
  shapesCaptions,
  type ShapesConfig,
  type ShapesDataset,
  shapesDataset,
  type ShapesOptions,
  type ShapesSource,
  type ShapesSplit,
} from "./shapes.ts";
export {
  COLOUR_NAMES,
  DEFAULT_HELD_OUT,
  describeScene,
  QUADRANTS,
  RELATIONS,
  type Scene,
  sceneCaption,
  type SceneDescription,
  SHAPE_COLOURS,
  SHAPE_KINDS,
  SHAPE_SIZES,
} from "./shapes_scene.ts";
export { renderScene } from "./shapes_render.ts";
export { type AttributeScore, readImage, type ReadScene, scoreReading } from "./shapes_checker.ts";
export { readCaption } from "./shapes_parse.ts";
export {
  evaluateShapes,
  formatShapesEval,
  runModel,
  type ShapesEval,
  type ShapesModel,
} from "./shapes_eval.ts";
export { type ImageAutoencoder, openAutoencoder, reconstructionError } from "./shapes_vae.ts";
export { rgbGridPng } from "./shapes_png.ts";
export {
  imageCaptions,
  type ImageCaptionsConfig,
  type ImageCaptionsOptions,
  type ImageCaptionsSource,
  imageFolder,
  imageJsonl,
  type OwnImage,
} from "./own_images.ts";
export {
  packDocuments,
  type PackedRow,
  type PackingReport,
  textBatch,
  textCorpus,
  textFiles,
  type TextFilesConfig,
  type TextFilesOptions,
  type TextFilesSource,
} from "./own_text.ts";
export { DATA_KINDS, type DataFactory, dataFromFlag, type DataKind, parseDataFlag } from "./own_data.ts";
export { DataError, DataFileError } from "./data_files.ts";
export { decodePicture, type Picture, readPicture, withChannels } from "./image_files.ts";
export { modelImage } from "./image_resize.ts";
