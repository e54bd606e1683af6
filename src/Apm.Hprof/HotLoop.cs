using System.Runtime.CompilerServices;

namespace Apm.Hprof;

/// <summary>How the triage's long-running loops are compiled.</summary>
internal static class HotLoop
{
    /// <summary>
    /// A JIT-compiled build marks the hot loops AggressiveOptimization so that a single cold run does not spend them in
    /// unoptimized tier-0 code. A ReadyToRun build (<c>PublishReadyToRun</c>; docs/performance.md measures one) leaves the mark
    /// out: the runtime never uses precompiled code for such methods and would compile them again at every start, while
    /// their precompiled code is already optimized.
    /// </summary>
#if READY_TO_RUN
    public const MethodImplOptions Options = 0;
#else
    public const MethodImplOptions Options = MethodImplOptions.AggressiveOptimization;
#endif
}
