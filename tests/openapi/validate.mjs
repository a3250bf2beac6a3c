// Validates one OpenAPI document (YAML or JSON) against the official OpenAPI schema of its version.
// Usage: node validate.mjs FILE. Exit 0 and "valid" if it validates, 1 with the errors if not.
import { Validator } from "@seriousme/openapi-schema-validator";

const file = process.argv[2];
if (!file) {
  console.error("usage: node validate.mjs FILE");
  process.exit(2);
}
const validator = new Validator();
const result = await validator.validate(file);
if (result.valid) {
  console.log(`${file}: valid OpenAPI ${validator.version}`);
  process.exit(0);
}
console.error(`${file}: invalid`);
console.error(JSON.stringify(result.errors, null, 2));
process.exit(1);
