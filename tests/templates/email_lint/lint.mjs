// Checks HTML e-mails against the Can I email data (@jsx-email/doiuse-email) for the clients the
// shop's customers use. Usage: node lint.mjs FILE.html...
// Prints one JSON object: file -> [{feature, client, support}], support "none" or "partial".
// Exits 2 if the package reports something in a form this script does not understand, so that a
// new version cannot make the check pass by saying nothing.
import { readFileSync } from 'node:fs';
import { doIUseEmail } from '@jsx-email/doiuse-email';

export const CLIENTS = ['gmail.*', 'outlook.*', 'apple-mail.*', 'yahoo.*', 'samsung-email.*'];
const FINDING = /^`(.+)` is (not|only partially) supported by `([^`]+)`$/;

const report = {};
for (const file of process.argv.slice(2)) {
  const result = doIUseEmail(readFileSync(file, 'utf8'), { emailClients: CLIENTS });
  const found = new Map();
  for (const message of [...(result.errors ?? []), ...result.warnings]) {
    const match = FINDING.exec(message);
    if (match === null) {
      console.error(`unexpected message from doiuse-email: ${message}`);
      process.exit(2);
    }
    const [, feature, level, client] = match;
    const support = level === 'not' ? 'none' : 'partial';
    found.set(`${feature}\u0000${client}\u0000${support}`, { feature, client, support });
  }
  report[file] = [...found.values()];
}
process.stdout.write(JSON.stringify(report));
