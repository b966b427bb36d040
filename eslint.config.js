import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: ['**/node_modules/**', '**/dist/**', 'tests/artifacts/**', 'front/dist/**', '**/*.d.ts'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: { ...globals.node },
      // Type information for the promise rules below. Two programs cover every .ts file: the root
      // tsconfig (protocol/src, backend/src, messages-lib/src, tests/, scripts/,
      // front/vite.config.ts) and the front's (browser types). A file in neither fails the lint.
      // One program for the rest, not one per package (projectService): a fifth less time, a
      // quarter less memory.
      parserOptions: {
        project: ['./tsconfig.json', './front/tsconfig.json'],
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-this-alias': 'off',
      // A promise nobody awaits says where its failure goes: `void p.catch(…)`. `void` alone is not
      // enough: an unhandled rejection stops a Node process.
      '@typescript-eslint/no-floating-promises': ['error', { ignoreVoid: false }],
      '@typescript-eslint/no-misused-promises': 'error',
      'no-empty': ['error', { allowEmptyCatch: true }],
      eqeqeq: ['error', 'always'],
    },
  },
  {
    // Plain JavaScript (this file, scripts/*.mjs, the probe's bin, k8s/**/*.js) has no tsconfig:
    // lint it without type information.
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    // Run by mongosh in the mongodb-init Job: the shell's own globals.
    files: ['k8s/**/*.js'],
    languageOptions: {
      globals: { Mongo: 'readonly', print: 'readonly', printjson: 'readonly', sleep: 'readonly' },
    },
  },
  {
    files: ['tests/**/*.ts'],
    languageOptions: { globals: { ...globals.mocha } },
    rules: { '@typescript-eslint/no-unused-expressions': 'off' },
  },
);
