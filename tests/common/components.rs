//! Hostile components made from the real test plugins by adding sections to
//! their binaries (a component's sections may come in any order, so appended
//! core modules and instances are valid), and by patching the mode marker of
//! `hostile-info`. What the hand-written WAT did, made reproducible.
//! Pure functions of bytes: the tests and `voxpipe-bench sandbox` share them.

use wasm_encoder::{
    CodeSection, ComponentSection, ExportKind, ExportSection, Function, FunctionSection,
    InstanceSection, Instruction, MemorySection, MemoryType, Module, ModuleSection, StartSection,
    TypeSection, ValType,
};

/// Core modules defined at the top level of `component`.
fn top_level_modules(component: &[u8]) -> u32 {
    let mut depth = 0u32;
    let mut modules = 0;
    for payload in wasmparser::Parser::new(0).parse_all(component) {
        match payload.expect("a valid component") {
            wasmparser::Payload::Version { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth -= 1,
            wasmparser::Payload::ModuleSection { .. } if depth == 1 => modules += 1,
            _ => {}
        }
    }
    modules
}

/// A core module with one memory of `initial_pages` whose start function
/// grows it by `grow_pages` (64 KiB each).
fn memory_hog(initial_pages: u64, grow_pages: u32) -> Module {
    let mut m = Module::new();
    let mut types = TypeSection::new();
    types.ty().function([], []);
    m.section(&types);
    let mut funcs = FunctionSection::new();
    funcs.function(0);
    m.section(&funcs);
    let mut mems = MemorySection::new();
    mems.memory(MemoryType {
        minimum: initial_pages,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    m.section(&mems);
    let mut exports = ExportSection::new();
    exports.export("memory", ExportKind::Memory, 0);
    m.section(&exports);
    m.section(&StartSection { function_index: 0 });
    let mut code = CodeSection::new();
    let mut f = Function::new([]);
    // Grow; trap when refused (as a program whose allocation failed does).
    f.instruction(&Instruction::I32Const(grow_pages as i32));
    f.instruction(&Instruction::MemoryGrow(0));
    f.instruction(&Instruction::I32Const(-1));
    f.instruction(&Instruction::I32Eq);
    f.instruction(&Instruction::If(wasm_encoder::BlockType::Empty));
    f.instruction(&Instruction::Unreachable);
    f.instruction(&Instruction::End);
    // Fill all of it, so the memory is really resident, not only reserved.
    f.instruction(&Instruction::I32Const(0));
    f.instruction(&Instruction::I32Const(1));
    f.instruction(&Instruction::MemorySize(0));
    f.instruction(&Instruction::I32Const(16));
    f.instruction(&Instruction::I32Shl);
    f.instruction(&Instruction::MemoryFill(0));
    f.instruction(&Instruction::End);
    code.function(&f);
    m.section(&code);
    m
}

/// `component` plus `count` core instances of a module that has its own
/// memory (`initial_pages`) and grows it in its start function: every
/// instantiation (so every call, `describe` at load included) creates them.
pub fn with_memory_hogs(
    component: &[u8],
    count: u32,
    initial_pages: u64,
    grow_pages: u32,
) -> Vec<u8> {
    let index = top_level_modules(component);
    let mut out = component.to_vec();
    ModuleSection(&memory_hog(initial_pages, grow_pages)).append_to_component(&mut out);
    let mut instances = InstanceSection::new();
    for _ in 0..count {
        instances.instantiate(index, Vec::<(&str, wasm_encoder::ModuleArg)>::new());
    }
    instances.append_to_component(&mut out);
    out
}

/// `component` plus a core module of `functions` functions of about `ops`
/// instructions each that is never instantiated: it costs only compile time
/// and compile memory.
pub fn with_dead_code(component: &[u8], functions: u32, ops: u32) -> Vec<u8> {
    let mut m = Module::new();
    let mut types = TypeSection::new();
    types.ty().function([ValType::I32], [ValType::I32]);
    m.section(&types);
    let mut funcs = FunctionSection::new();
    for _ in 0..functions {
        funcs.function(0);
    }
    m.section(&funcs);
    let mut code = CodeSection::new();
    for i in 0..functions {
        let mut f = Function::new([(1, ValType::I32)]);
        f.instruction(&Instruction::LocalGet(0));
        for k in 0..ops {
            // Data-dependent arithmetic the compiler cannot fold away.
            f.instruction(&Instruction::I32Const((k ^ i) as i32));
            f.instruction(&Instruction::I32Xor);
            f.instruction(&Instruction::LocalTee(1));
            f.instruction(&Instruction::LocalGet(0));
            f.instruction(&Instruction::I32Mul);
        }
        f.instruction(&Instruction::End);
        code.function(&f);
    }
    m.section(&code);
    let mut out = component.to_vec();
    ModuleSection(&m).append_to_component(&mut out);
    out
}

/// The bytes of `hostile-info.wasm` with its describe mode patched to `mode`
/// (see its source).
pub fn patch_hostile_info(bytes: &[u8], mode: &str) -> Vec<u8> {
    let old = format!("voxpipe-hostile-info:{:_<43}", "default");
    let new = format!("voxpipe-hostile-info:{mode:_<43}");
    assert_eq!((old.len(), new.len()), (64, 64));
    let at = bytes
        .windows(64)
        .position(|w| w == old.as_bytes())
        .expect("the marker in hostile-info.wasm");
    let mut patched = bytes.to_vec();
    patched[at..at + 64].copy_from_slice(new.as_bytes());
    patched
}
