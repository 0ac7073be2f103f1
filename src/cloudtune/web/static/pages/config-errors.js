// Where a problem of a config lies: the server's refusals mapped onto the editor's fields, the
// place of a JSON syntax error, and the reading of a typed number.

// The editor's input of each trainer arg it shows.
const ARG_INPUTS = {
  model_family: "model-family",
  model_type: "model-type",
  pretrained_model_name_or_path: "model-base",
  output_dir: "model-output",
  max_train_steps: "train-steps",
  lora_rank: "train-rank",
  learning_rate: "train-lr",
  resolution: "train-resolution",
};

// Fields a path check speaks of (a dataset's as "ds-<field>").
export const PATH_FIELDS = new Set(["model-base", "model-output", "ds-path"]);

const DATASET_CODES = new Set(["path_not_allowed", "dataset_empty", "symlink_outside_dataset", "dataset_too_many_files", "invalid_dataset"]);

function datasetIndex(error, doc) {
  const list = Array.isArray(doc.dataloader_config) ? doc.dataloader_config : [];
  const message = error.message || "";
  const numbered = /dataloader_config\[(\d+)\]/.exec(message);
  if (numbered && Number(numbered[1]) < list.length) return Number(numbered[1]);
  const named = error.body?.dataset ?? /dataset '([^']*)'/.exec(message)?.[1];
  if (named === undefined || named === null) return -1;
  return list.findIndex((entry) => entry && entry.id === named);
}

// [[input id, message], ...] for what the error names; empty when it names no field.
export function serverProblems(error, doc) {
  const body = error.body || {};
  const message = error.message || "";
  const code = error.code;
  if (["invalid_config_name", "config_exists", "config_name_taken"].includes(code)) return [["config-name", message]];
  if (code === "validation_error" && Array.isArray(body.detail)) {
    return body.detail
      .map((item) => {
        const where = (item.loc || []).filter((part) => part !== "body");
        const target = { description: "config-description", name: "config-name" }[where[0]] || (where[0] === "config" ? "raw-json" : null);
        return target ? [target, item.msg] : null;
      })
      .filter(Boolean);
  }
  if (DATASET_CODES.has(code)) {
    const field = body.field;
    if (field === "output_dir") return [["model-output", message]];
    if (field && ARG_INPUTS[field] && !/^dataset /.test(message)) return [[ARG_INPUTS[field], message]];
    const index = datasetIndex(error, doc);
    if (index < 0) return [];
    let part = "path";
    if (/\.caption_strategy/.test(message)) part = "caption";
    else if (/\]\.id /.test(message)) part = "id";
    return [[`ds-${index}-${part}`, message]];
  }
  if (code === "invalid_config") {
    const arg = /^(\w+) must\b/.exec(message)?.[1];
    if (arg && ARG_INPUTS[arg]) return [[ARG_INPUTS[arg], message]];
  }
  return [];
}

// A number typed in the form: a number when it reads as one, else the text as typed (so the
// raw view shows it and the checks refuse it); undefined when empty.
export function parseNumber(text) {
  const trimmed = text.trim();
  if (!trimmed) return undefined;
  if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(trimmed)) {
    const value = Number(trimmed);
    if (Number.isFinite(value)) return value;
  }
  return trimmed;
}

const LITERAL = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null/y;

// The offset of the first syntax error in `text` (JSON.parse does not always say where), or
// null when it has none.
export function jsonErrorOffset(text) {
  let i = 0;
  const fail = () => {
    throw new RangeError(String(i));
  };
  const space = () => {
    while (i < text.length && " \t\n\r".includes(text[i])) i += 1;
  };
  const string = () => {
    i += 1;
    while (i < text.length) {
      const c = text[i];
      if (c === '"') {
        i += 1;
        return;
      }
      if (c < " ") fail();
      i += c === "\\" ? 2 : 1;
    }
    fail();
  };
  const value = () => {
    space();
    const c = text[i];
    if (c === "{" || c === "[") {
      const close = c === "{" ? "}" : "]";
      i += 1;
      space();
      if (text[i] === close) {
        i += 1;
        return;
      }
      for (;;) {
        if (c === "{") {
          space();
          if (text[i] !== '"') fail();
          string();
          space();
          if (text[i] !== ":") fail();
          i += 1;
        }
        value();
        space();
        if (text[i] === ",") i += 1;
        else if (text[i] === close) {
          i += 1;
          return;
        } else fail();
      }
    }
    if (c === '"') return string();
    LITERAL.lastIndex = i;
    const match = LITERAL.exec(text);
    if (!match) fail();
    i += match[0].length;
  };
  try {
    value();
    space();
    if (i < text.length) fail();
    return null;
  } catch (error) {
    // Ours carries the offset; another (a document nested past the stack) has no place.
    return error instanceof RangeError && /^\d+$/.test(error.message) ? Number(error.message) : null;
  }
}

export function lineColumn(text, offset) {
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  return { line, column: offset - before.lastIndexOf("\n") };
}
