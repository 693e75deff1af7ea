// The package's public surface, entry by entry: every exported name with its kind and signature
// (classes with their public members), from the TypeScript sources the entries are built from.
//   node scripts/api-report.mjs          prints the report (markdown)
//   node scripts/api-report.mjs --write  writes docs/api-report.md
// tests/api-report.test.ts checks that the committed report is current and that every exported
// name (and every public class member) carries a doc comment, so a change to the public API shows
// up in review as a change to docs/api-report.md.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const repository = fileURLToPath(new URL('..', import.meta.url));
export const reportPath = join(repository, 'docs', 'api-report.md');

/** Each subpath of package.json "exports" with its source per condition (dist/X.js ← src/X.ts). */
function entries() {
  const manifest = JSON.parse(readFileSync(join(repository, 'package.json'), 'utf8'));
  const out = [];
  for (const [subpath, target] of Object.entries(manifest.exports)) {
    if (typeof target === 'string') {
      out.push({ subpath, condition: 'default', file: target });
      continue;
    }
    for (const [condition, value] of Object.entries(target)) {
      const file = typeof value === 'string' ? value : value.default;
      if (condition === 'types') continue;
      out.push({ subpath, condition, file });
    }
  }
  return out;
}

function sourceOf(file) {
  const match = /^\.\/dist\/(.+)\.js$/.exec(file);
  return match ? join(repository, 'src', `${match[1]}.ts`) : undefined;
}

const flags = ts.TypeFormatFlags.NoTruncation | ts.TypeFormatFlags.UseSingleQuotesForStringLiteralType | ts.TypeFormatFlags.WriteArrowStyleSignature;

function documented(symbol, checker) {
  return symbol.getDocumentationComment(checker).some((part) => part.text.trim() !== '');
}

function oneLine(text) {
  return text.replace(/\s+/g, ' ').trim();
}

/** The declaration's own text without its body or doc comment, on one line. */
function declarationText(declaration) {
  const source = declaration.getSourceFile();
  const printer = ts.createPrinter({ removeComments: true });
  return oneLine(printer.printNode(ts.EmitHint.Unspecified, declaration, source));
}

function describe(symbol, checker, problems, where) {
  const lines = [];
  const declaration = symbol.declarations?.[0];
  if (!declaration) return [`- \`${symbol.name}\``];
  if (!documented(symbol, checker)) problems.push(`${where}: ${symbol.name} has no doc comment`);
  if (ts.isClassDeclaration(declaration)) {
    lines.push(`- class \`${symbol.name}\``);
    const members = [];
    // A member that implements a documented member of an implemented interface or base class is documented there.
    const inherited = (declaration.heritageClauses ?? []).flatMap((clause) => clause.types.map((type) => checker.getTypeAtLocation(type)));
    const documentedAbove = (name) =>
      inherited.some((type) => {
        const property = type.getProperty(name);
        return property !== undefined && documented(property, checker);
      });
    for (const member of declaration.members) {
      const modifiers = ts.getCombinedModifierFlags(member);
      if (modifiers & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected)) continue;
      if (member.name && ts.isPrivateIdentifier(member.name)) continue;
      if (ts.isConstructorDeclaration(member)) continue; // documented on the class
      const memberSymbol = member.name ? checker.getSymbolAtLocation(member.name) : undefined;
      if (memberSymbol && !documented(memberSymbol, checker) && !documentedAbove(memberSymbol.name))
        problems.push(`${where}: ${symbol.name}.${memberSymbol.name} has no doc comment`);
      let text;
      if (ts.isMethodDeclaration(member) || ts.isGetAccessorDeclaration(member) || ts.isSetAccessorDeclaration(member) || ts.isPropertyDeclaration(member)) {
        const copy = ts.isMethodDeclaration(member)
          ? ts.factory.updateMethodDeclaration(
              member,
              member.modifiers,
              member.asteriskToken,
              member.name,
              member.questionToken,
              member.typeParameters,
              member.parameters,
              member.type,
              undefined,
            )
          : ts.isGetAccessorDeclaration(member)
            ? ts.factory.updateGetAccessorDeclaration(
                member,
                member.modifiers,
                member.name,
                member.parameters,
                member.type ?? ts.factory.createTypeReferenceNode(checker.typeToString(checker.getTypeAtLocation(member), undefined, flags)),
                undefined,
              )
            : member;
        text = declarationText(copy).replace(/;$/, '');
      } else {
        text = declarationText(member);
      }
      members.push(`  - \`${text}\``);
    }
    lines.push(...members.sort());
    return lines;
  }
  if (ts.isFunctionDeclaration(declaration)) {
    const signatures = checker.getSignaturesOfType(checker.getTypeOfSymbolAtLocation(symbol, declaration), ts.SignatureKind.Call);
    for (const signature of signatures) lines.push(`- function \`${symbol.name}${checker.signatureToString(signature, undefined, flags)}\``);
    return lines;
  }
  if (ts.isVariableDeclaration(declaration)) {
    return [`- const \`${symbol.name}: ${checker.typeToString(checker.getTypeOfSymbolAtLocation(symbol, declaration), undefined, flags)}\``];
  }
  if (ts.isInterfaceDeclaration(declaration) || ts.isTypeAliasDeclaration(declaration)) {
    return [
      `- \`${declarationText(declaration)
        .replace(/^export /, '')
        .replace(/^declare /, '')}\``,
    ];
  }
  return [`- \`${declarationText(declaration)}\``];
}

/** The report text, and every exported name or public member without a doc comment. */
export function apiReport() {
  const list = entries();
  const files = list.map((entry) => sourceOf(entry.file)).filter(Boolean);
  const config = ts.getParsedCommandLineOfConfigFile(join(repository, 'tsconfig.build.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} });
  const program = ts.createProgram(files, { ...config.options, noEmit: true });
  const checker = program.getTypeChecker();
  const problems = [];
  const out = [
    '# Public API',
    '',
    'Generated by `node scripts/api-report.mjs --write` from the entries in package.json "exports";',
    'tests/api-report.test.ts fails when it is out of date. Review a change here as a change to the',
    'public API.',
    '',
  ];
  let names = 0;
  for (const entry of list) {
    const source = sourceOf(entry.file);
    out.push(`## \`bernoulli-diffusion${entry.subpath.slice(1)}\` (${entry.condition}: ${entry.file})`, '');
    if (!source) {
      out.push('A file, not a module.', '');
      continue;
    }
    const sourceFile = program.getSourceFile(source);
    const moduleSymbol = checker.getSymbolAtLocation(sourceFile);
    const exported = moduleSymbol ? checker.getExportsOfModule(moduleSymbol) : [];
    const where = `${entry.subpath} (${entry.condition})`;
    for (const symbol of [...exported].sort((a, b) => a.name.localeCompare(b.name))) {
      const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
      const lines = describe(target, checker, problems, where);
      if (target.name !== symbol.name) lines[0] = lines[0].replace(`\`${target.name}`, `\`${symbol.name}`);
      out.push(...lines);
      names += 1;
    }
    out.push('');
  }
  return { text: `${out.join('\n').trimEnd()}\n`, problems, names };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { text, problems } = apiReport();
  if (process.argv.includes('--write')) {
    writeFileSync(reportPath, text);
    console.log(`api-report: wrote ${reportPath}`);
  } else {
    process.stdout.write(text);
  }
  for (const problem of problems) console.error(`api-report: ${problem}`);
  if (problems.length > 0) process.exitCode = 1;
}
