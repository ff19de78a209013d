//go:build linux && cgo

package uringsync

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestExportsTakeNoPointerHandle checks the rule of runtime/cgo.Handle: the
// handle goes to C and back as an integer (uintptr_t). An exported callback
// that received it as unsafe.Pointer would hold a small integer in a pointer
// slot, and the runtime aborts ("invalid pointer found on stack") if the
// stack is copied while that slot is live. go vet does not catch this.
func TestExportsTakeNoPointerHandle(t *testing.T) {
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	exports := 0
	for _, name := range names {
		file, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || !exported(fn) {
				continue
			}
			exports++
			for _, p := range fn.Type.Params.List {
				if sel, ok := p.Type.(*ast.SelectorExpr); ok && sel.Sel.Name == "Pointer" {
					if x, ok := sel.X.(*ast.Ident); ok && x.Name == "unsafe" {
						t.Errorf("%s: exported %s takes an unsafe.Pointer; pass the cgo.Handle as C.uintptr_t", name, fn.Name.Name)
					}
				}
			}
		}
	}
	if exports == 0 {
		t.Fatal("no //export functions found")
	}
}

// exported reports whether fn carries a cgo //export directive.
func exported(fn *ast.FuncDecl) bool {
	if fn.Doc == nil {
		return false
	}
	for _, c := range fn.Doc.List {
		if strings.TrimSpace(c.Text) == "//export "+fn.Name.Name {
			return true
		}
	}
	return false
}
