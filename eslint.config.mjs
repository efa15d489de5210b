// Lint for src/, test/, bench/ and scripts/: typescript-eslint's recommended rules with type information, plus
// promises that must be awaited or handled (a floating promise is a lost error or a process that lingers).
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'generated/**', 'node_modules/**', '.bench/**', '.services/**', 'src/dashboard/assets/**', '**/*.mjs', '**/*.js'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // node:test's describe() and it() return promises the runner itself awaits.
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite', 'before', 'after'] }] },
      ],
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false, attributes: false } }],
      // Passing on what a catch or a rejection gave (unknown) is forwarding an error, not making a new one.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
      // Unused names are tsc's job (noUnusedLocals, noUnusedParameters); `_` marks the ones kept on purpose.
      '@typescript-eslint/no-unused-vars': 'off',
    },
  },
  {
    // Fakes in the tests implement async interfaces with values at hand: an async function without await is
    // the point there, not a slip.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/require-await': 'off' },
  },
);
