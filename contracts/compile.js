#!/usr/bin/env node
// Compiles contracts/src/*.sol with the pinned solcjs (installed by `make tools` into
// .tools/npm) and writes contracts/out/<Contract>.json (abi + bytecode). The artifacts are
// committed so `cargo build` needs no compiler.
//
//   node contracts/compile.js          compile and write the artifacts
//   node contracts/compile.js --check  exit 1 if the committed artifacts differ from a fresh
//                                      compile (exit 2 if the compiler is missing)
//
// Every compiler input is fixed here (version, optimizer runs, EVM version, no metadata hash)
// so the same sources always give the same bytes on any machine.
'use strict';

const fs = require('fs');
const path = require('path');

const SOLC_VERSION = '0.8.37';
const CONTRACTS = ['HobExchange', 'TestToken'];
const SETTINGS = {
  // settleBatch runs far more often than the contract is deployed: optimise for calls.
  optimizer: { enabled: true, runs: 10000 },
  // Cancun is live on BSC (and every chain we target); pinned so upgrades of solc's default
  // never change the bytecode silently.
  evmVersion: 'cancun',
  viaIR: false,
  // No metadata hash or CBOR trailer: they would tie the bytecode to file paths and comments.
  metadata: { bytecodeHash: 'none', appendCBOR: false },
  outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
};

const here = __dirname;
const repo = path.resolve(here, '..');
const srcDir = path.join(here, 'src');
const outDir = path.join(here, 'out');

function loadSolc() {
  const solcPath = path.join(repo, '.tools', 'npm', 'node_modules', 'solc');
  let solc;
  try {
    solc = require(solcPath);
  } catch (e) {
    console.error(`solc (solcjs ${SOLC_VERSION}) is not installed at ${solcPath}: run \`make tools\``);
    process.exit(2);
  }
  const version = solc.version();
  if (!version.startsWith(SOLC_VERSION + '+')) {
    console.error(`expected solc ${SOLC_VERSION}, found ${version}: run \`make tools\``);
    process.exit(2);
  }
  return solc;
}

function compile(solc) {
  const sources = {};
  for (const file of fs.readdirSync(srcDir).filter((f) => f.endsWith('.sol')).sort()) {
    sources[file] = { content: fs.readFileSync(path.join(srcDir, file), 'utf8') };
  }
  const input = { language: 'Solidity', sources, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const diagnostics = output.errors || [];
  for (const d of diagnostics) {
    console.error(d.formattedMessage || d.message);
  }
  // Warnings fail the build too: the contract holds users' funds, so it compiles clean.
  if (diagnostics.length > 0) {
    process.exit(1);
  }
  const artifacts = {};
  for (const name of CONTRACTS) {
    const contract = output.contracts[`${name}.sol`] && output.contracts[`${name}.sol`][name];
    if (!contract) {
      console.error(`contract ${name} not found in ${name}.sol`);
      process.exit(1);
    }
    const artifact = {
      contractName: name,
      compiler: `solc ${solc.version()}`,
      settings: { optimizer: SETTINGS.optimizer, evmVersion: SETTINGS.evmVersion, viaIR: SETTINGS.viaIR },
      abi: contract.abi,
      bytecode: '0x' + contract.evm.bytecode.object,
      deployedBytecode: '0x' + contract.evm.deployedBytecode.object,
    };
    artifacts[`${name}.json`] = JSON.stringify(artifact, null, 2) + '\n';
  }
  return artifacts;
}

function main() {
  const check = process.argv.includes('--check');
  const artifacts = compile(loadSolc());
  if (check) {
    const stale = Object.keys(artifacts).filter((file) => {
      const target = path.join(outDir, file);
      return !fs.existsSync(target) || fs.readFileSync(target, 'utf8') !== artifacts[file];
    });
    if (stale.length > 0) {
      console.error(
        `contracts/out is stale (${stale.join(', ')} differ from contracts/src): run \`node contracts/compile.js\` and commit the result`,
      );
      process.exit(1);
    }
    console.log('contracts/out matches contracts/src');
    return;
  }
  fs.mkdirSync(outDir, { recursive: true });
  for (const [file, text] of Object.entries(artifacts)) {
    fs.writeFileSync(path.join(outDir, file), text);
    const size = (JSON.parse(text).deployedBytecode.length - 2) / 2;
    console.log(`wrote contracts/out/${file} (${size} bytes deployed)`);
  }
}

main();
