/** Result codes (PROTOCOL.md §5) as text chips; none at all is shown as "ok". */
export function Codes({ codes }: { codes: readonly string[] }) {
  if (codes.length === 0) return <span class="codes ok">ok</span>;
  return (
    <span class="codes">
      {codes.map((c) => (
        <code key={c} class="code">
          {c}
        </code>
      ))}
    </span>
  );
}
