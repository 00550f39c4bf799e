package readmodel

import (
	"context"
	"fmt"
	"log/slog"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/serin-dev/serin/rollout/v1alpha1"
)

// Feed registers the store with the Rollout informer of informers (for
// example a controller-runtime manager's cache, whose scheme must include
// v1alpha1) so that every add, update and delete reaches the store. The
// informers must be started by the caller (the manager does it); Feed
// marks the store synced once the informer's initial list has arrived,
// in a goroutine that ends with ctx.
func (s *Store) Feed(ctx context.Context, informers cache.Informers, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	inf, err := informers.GetInformer(ctx, &v1alpha1.Rollout{})
	if err != nil {
		return fmt.Errorf("read model: Rollout informer: %w", err)
	}
	reg, err := inf.AddEventHandler(handler{s: s, log: log})
	if err != nil {
		return fmt.Errorf("read model: add Rollout event handler: %w", err)
	}
	go func() {
		if toolscache.WaitForCacheSync(ctx.Done(), reg.HasSynced) {
			s.setSynced()
		}
	}()
	return nil
}

// handler applies informer notifications to the store.
type handler struct {
	s   *Store
	log *slog.Logger
}

func (h handler) OnAdd(obj any, _ bool) { h.upsert(obj) }

func (h handler) OnUpdate(_, obj any) { h.upsert(obj) }

func (h handler) OnDelete(obj any) {
	if tomb, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	r, ok := obj.(*v1alpha1.Rollout)
	if !ok {
		h.log.Error("read model: unexpected object in Rollout delete", "type", fmt.Sprintf("%T", obj))
		return
	}
	if err := h.s.Delete(r.Namespace, r.Name); err != nil {
		h.log.Error("read model: delete failed", "rollout", r.Namespace+"/"+r.Name, "err", err)
	}
}

func (h handler) upsert(obj any) {
	r, ok := obj.(*v1alpha1.Rollout)
	if !ok {
		h.log.Error("read model: unexpected object in Rollout event", "type", fmt.Sprintf("%T", obj))
		return
	}
	if err := h.s.Upsert(r); err != nil {
		h.log.Error("read model: upsert failed", "rollout", r.Namespace+"/"+r.Name, "err", err)
	}
}
