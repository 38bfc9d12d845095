import type { CodegenConfig } from "@graphql-codegen/cli";

// Types for every operation in src/, from the gateway's SDL (`make sdl` writes schema.graphql).
const config: CodegenConfig = {
  schema: "schema.graphql",
  documents: ["src/**/*.{ts,tsx}", "!src/gql/**/*"],
  ignoreNoDocuments: true,
  generates: {
    "src/gql/": {
      preset: "client",
      presetConfig: { fragmentMasking: false },
      config: {
        useTypeImports: true,
        enumsAsTypes: true,
        scalars: { Date: "string", DateTime: "string", JSON: "unknown", ID: "string" },
      },
    },
  },
};

export default config;
